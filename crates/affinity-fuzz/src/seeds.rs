//! Valid (and nearly valid) inputs each target starts from: mutations of real requests reach
//! much deeper than random bytes.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::targets::{SEPARATOR, Target};

const MESSAGES: &[&str] = &[
    r#"{"type":"track","userId":"u1","event":"Order Completed","properties":{"product_id":"p1","brand":"Acme","price":12.5,"products":[{"product_id":"p2","brand":"B"}]},"timestamp":"2026-01-02T03:04:05.678Z","messageId":"m-1"}"#,
    r#"{"type":"identify","anonymousId":"a1","traits":{"email":"x@example.com","plan":null},"context":{"traits":{"ignored":true}}}"#,
    r#"{"type":"alias","userId":"new","previousId":"old","originalTimestamp":"2026-01-01T00:00:00+02:00"}"#,
    r#"{"type":"page","userId":123456789012,"name":"Home","properties":{"path":"/"},"sentAt":"2026-01-01T00:00:00Z"}"#,
    r#"{"type":"screen","anonymousId":"a2","name":"Settings"}"#,
    r#"{"type":"group","userId":"u2","groupId":"g1","traits":{"name":"Org"}}"#,
    r#"{"userId":"u3","event":"Product Viewed","properties":{"products[].brand":"flat key"}}"#,
    r#"{"type":"track","userId":"","anonymousId":" ","event":""}"#,
];

fn batch_bodies() -> Vec<String> {
    vec![
        format!(
            r#"{{"batch":[{}],"writeKey":"wk_test"}}"#,
            MESSAGES.join(",")
        ),
        format!(r#"{{"writeKey":null,"batch":[{}]}}"#, MESSAGES[0]),
        r#"{"batch":[]}"#.to_string(),
        r#"{"batch":[1,"x",null,{}],"context":{"library":{"name":"analytics-python"}}}"#
            .to_string(),
        r#"{"batch":{"type":"track"}}"#.to_string(),
    ]
}

const CATALOGS: &[&str] = &[
    r#"{"events":[{"name":"Order Completed","product_id_property":"product_id","weight":3.0},{"name":"Product Viewed","product_id_property":"products[].product_id"}],"columns":[{"name":"brand","properties":{"Order Completed":"brand","Product Viewed":"products[].brand"}}],"lookback_days":90,"half_life_days":30.5,"model_selection":"user_time"}"#,
    r#"{"events":[{"name":"Movie Rated","product_id_property":"movie_id"}],"model_selection":"random"}"#,
    r#"{"events":[],"columns":[{"name":"item_id","properties":{}}],"half_life_days":-1}"#,
];

const PROPERTIES: &[&str] = &[
    r#"{"product_id":"p1","brand":"Acme","products":[{"product_id":"p2","brand":["B","C"]},{"product_id":7},{"brand":"no id"}]}"#,
    r#"{"movie_id":42,"products":"not a list"}"#,
];

const CATALOG_FILES: &[&str] = &[
    "item_id,brand,price\np1,Acme,12.5\np2,\"Quoted, comma\",\np3,B,\"\"\n",
    "{\"item_id\":\"p1\",\"brand\":\"Acme\",\"tags\":[\"a\",\"b\"]}\n{\"item_id\":2,\"price\":3.5}\n\n",
    "brand,item_id\r\nA,x\r\n",
    "item_id\n\n,\n",
];

const AUDIENCES: &[&str] = &[
    r#"{"name":"Brand fans","target":{"column":"brand","value":"Acme"},"max_size":{"percent":20},"horizon_days":30,"control_percent":10,"destinations":["crm"]}"#,
    r#"{"name":"Item buyers","target":{"item_id":"p1"},"max_size":{"count":500},"event":"Order Completed","refresh":"daily","question":"next_visit"}"#,
    r#"{"name":"trait","column":"brand","k":3,"exclude_interacted":true,"exclude":[{"column":"brand","values":["B"]}]}"#,
    r#"{"target":{"column":"brand"},"max_size":{"percent":0},"horizon_days":0,"control_percent":60,"destinations":["d1"],"colour":1}"#,
];

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).expect("compress into memory");
    e.finish().expect("compress into memory")
}

/// The starting corpus of `target`.
pub fn seeds(target: Target) -> Vec<Vec<u8>> {
    let texts = |list: &[&str]| list.iter().map(|s| s.as_bytes().to_vec()).collect();
    match target {
        Target::Message => texts(MESSAGES),
        Target::Batch => batch_bodies().into_iter().map(String::into_bytes).collect(),
        Target::Body => {
            // [encoding/limit choice, mode, body...]: see `targets::body_decoding`.
            let mut out = Vec::new();
            for body in batch_bodies().iter().take(2) {
                let bytes = body.as_bytes();
                out.push([&[0u8, 0][..], bytes].concat());
                // Encoding 2 is gzip; with limit index 2 (512 KiB) the choice is 2 + 7 * 2.
                out.push([&[16u8, 0][..], &gzip(bytes)].concat());
                out.push([&[16u8, 1][..], bytes].concat());
                out.push([&[9u8, 2][..], bytes].concat());
            }
            out
        }
        Target::Catalog => CATALOGS
            .iter()
            .flat_map(|c| {
                PROPERTIES
                    .iter()
                    .map(move |p| [c.as_bytes(), &[SEPARATOR], p.as_bytes()].concat())
            })
            .collect(),
        Target::CatalogFile => CATALOG_FILES
            .iter()
            .enumerate()
            .map(|(i, f)| [&[i as u8][..], f.as_bytes()].concat())
            .collect(),
        Target::Audience => texts(AUDIENCES),
    }
}
