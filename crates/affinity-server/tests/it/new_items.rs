//! New items, as a marketer meets them: a catalog file uploaded by `curl -F file=@items.csv`
//! adds an item nobody has engaged with yet and a new column; both are listed and targetable
//! at once, without retraining; the new item's audience is ranked by its columns (the people
//! who keep engaging with its brand and category first, nobody at a score of 0); a value no
//! item holds yet is accepted with a warning and close values.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::audiences::{live, post};
use crate::catalog::{put_catalog, ready_catalog};
use crate::models::{finished, train};
use crate::support::{ADMIN, TestApp, assert_error};

const DAY_MS: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z: the store's history ends here.
const END_MS: i64 = 1_767_225_600_000;

/// Three kinds of shopper, each loyal to one brand and category: boot fans buy Northwind
/// boots (80–96), sandal fans Contoso sandals (20–31), cap fans Fabrikam caps (10–15).
struct Shop;

impl Shop {
    const KINDS: [(
        &'static str,
        usize,
        &'static str,
        &'static str,
        &'static str,
        f64,
    ); 3] = [
        ("boot-fan", 30, "nb", "Northwind", "Boots", 80.0),
        ("sandal-fan", 60, "cs", "Contoso", "Sandals", 20.0),
        ("cap-fan", 60, "fc", "Fabrikam", "Caps", 10.0),
    ];

    fn messages() -> Vec<Value> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut out = Vec::new();
        for (kind, users, prefix, brand, category, base_price) in Self::KINDS {
            for u in 0..users {
                let user = format!("{kind}-{u:02}");
                // Every 3 to 8 days over half a year, up to the store's end.
                let mut t = END_MS - 180 * DAY_MS + rng.random_range(0..5) * DAY_MS;
                while t < END_MS {
                    let n = rng.random_range(1..=12);
                    let price = base_price + f64::from(n);
                    let event = if rng.random_bool(0.3) {
                        "Order Completed"
                    } else {
                        "Product Viewed"
                    };
                    out.push(json!({
                        "type": "track", "userId": user, "event": event,
                        "messageId": format!("{user}-{t}"),
                        "timestamp": affinity_core::timestamp::format_millis(t),
                        "properties": {"product_id": format!("{prefix}-{n}"), "brand": brand,
                                       "category": category, "price": price}
                    }));
                    t += rng.random_range(3..=8) * DAY_MS + rng.random_range(0..DAY_MS);
                }
            }
        }
        out
    }

    fn config() -> Value {
        let both = |p: &str| json!({"Order Completed": p, "Product Viewed": p});
        json!({
            "events": [
                {"name": "Order Completed", "product_id_property": "product_id", "weight": 3.0},
                {"name": "Product Viewed", "product_id_property": "product_id"}
            ],
            "columns": [
                {"name": "brand", "properties": both("brand")},
                {"name": "category", "properties": both("category")},
                {"name": "price", "properties": both("price")}
            ]
        })
    }
}

/// A store of the three kinds of shopper with a trained model; returns the model's id.
async fn trained_shop(app: &TestApp) -> Value {
    for chunk in Shop::messages().chunks(500) {
        let (s, b) = app.track("/v1/batch", &json!({ "batch": chunk })).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, b) = put_catalog(app, &Shop::config()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    ready_catalog(app).await;
    let (_, job) = train(app, json!({})).await;
    let model = finished(app, &job["model_id"]).await;
    assert_eq!(model["status"], "ready", "{model}");
    job["model_id"].clone()
}

/// A `multipart/form-data` body as `curl -F NAME=@FILE` sends it (curl types a .csv file as
/// application/octet-stream).
fn curl_form(part: &str, file_name: &str, content: &str) -> (String, Vec<u8>) {
    let boundary = "------------------------d74496d66958873e";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"{file_name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n{content}\r\n--{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

async fn upload_form(app: &TestApp, form: (String, Vec<u8>)) -> (StatusCode, Value) {
    app.upload_catalog(form.1, Some(&form.0)).await
}

const ITEMS_CSV: &str = "item_id,brand,category,price,material\n\
                         nb-new,Northwind,Boots,89.00,leather\n\
                         cs-1,Contoso,Sandals,21,rubber\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_new_item_is_targetable_at_once_and_ranked_by_its_columns() {
    let app = TestApp::spawn().await;
    let model_id = trained_shop(&app).await;

    // Uploaded as curl -F file=@items.csv does; answered once the catalog holds the rows.
    let (s, b) = upload_form(&app, curl_form("file", "items.csv", ITEMS_CSV)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (&b["items"], &b["format"], &b["new_items"], &b["status"]),
        (&json!(2), &json!("csv"), &json!(1), &json!("ready")),
        "{b}"
    );
    assert_eq!(b["new_columns"], json!(["material"]), "{b}");

    // The uploaded column is listed with its counts, beside the mapped ones.
    let (_, catalog) = app.admin_get("/api/v1/catalog").await;
    let columns = catalog["built_columns"].as_array().expect("built_columns");
    let material = columns
        .iter()
        .find(|c| c["name"] == "material")
        .unwrap_or_else(|| panic!("no material column: {catalog}"));
    assert_eq!(
        material,
        &json!({"name": "material", "source": "uploaded", "items": 2, "values": 2})
    );
    let brand = columns
        .iter()
        .find(|c| c["name"] == "brand")
        .expect("brand");
    assert_eq!(brand["source"], "mapped", "{catalog}");
    let (_, values) = app
        .admin_get("/api/v1/catalog/columns/material/values")
        .await;
    let values: HashSet<&str> = values["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|v| v["value"].as_str())
        .collect();
    assert_eq!(values, HashSet::from(["leather", "rubber"]));

    // An audience for the new item, created at once: nobody engaged with it, so users are
    // ranked by their propensity toward the items sharing its brand, category, price band.
    let (s, created) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "New boot", "target": {"item_id": "nb-new"}, "max_size": {"count": 100}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    assert!(created.get("warnings").is_none(), "{created}");
    let audience = live(&app, &created["id"]).await;
    assert_eq!(audience["model_id"], model_id, "no retraining: {audience}");
    let estimate = &audience["estimate"];
    let basis = &estimate["basis"];
    assert_eq!(basis["basis"], "columns", "{estimate}");
    assert_eq!(
        basis["similar_items"], 12,
        "the twelve Northwind boots: {basis}"
    );
    let shared: Vec<(&str, &str)> = basis["shared"]
        .as_array()
        .expect("shared")
        .iter()
        .map(|v| {
            (
                v["column"].as_str().unwrap_or_default(),
                v["matched"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    for want in [("brand", "exact"), ("category", "exact"), ("price", "band")] {
        assert!(shared.contains(&want), "{want:?} in {basis}");
    }
    let reason = basis["reason"].as_str().expect("reason");
    assert!(
        reason.contains("nobody has engaged with item \"nb-new\""),
        "{reason}"
    );
    assert_eq!(estimate["target_items"], 1, "{estimate}");
    // Its preview ranks the same way.
    let (s, preview) = post(
        &app,
        "/api/v1/audiences/preview",
        json!({"target": {"item_id": "nb-new"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{preview}");
    assert_eq!(preview["basis"]["basis"], "columns", "{preview}");

    let (_, page) = app
        .admin_get(&format!(
            "/api/v1/audiences/{}/members?limit=1000",
            created["id"]
        ))
        .await;
    let members = page["members"].as_array().expect("members");
    let size = audience["size"].as_u64().expect("size") as usize;
    assert_eq!(members.len(), size);
    assert!(size >= 20, "most boot fans found: {audience}");
    assert!(
        members
            .iter()
            .all(|m| m["score"].as_f64().expect("score") > 0.0),
        "no member at a score of 0: {page}"
    );
    // The people who keep engaging with Northwind boots, and nobody else: the others' propensity
    // is not worth a place, so the audience is smaller than asked and says why.
    let users: Vec<&str> = members
        .iter()
        .filter_map(|m| m["user_id"].as_str())
        .collect();
    assert!(
        users.iter().all(|u| u.starts_with("boot-fan-")),
        "boot fans only: {users:?}"
    );
    assert!(size < 100, "{audience}");
    assert!(
        estimate["size_reason"]
            .as_str()
            .is_some_and(|r| r.contains("of the 100 users asked for")),
        "a smaller audience says why: {estimate}"
    );

    // The uploaded column is a target at once; rubber is on an item people engage with, so its
    // own interactions rank users (sandal fans).
    let (s, created) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "Rubber", "target": {"column": "material", "value": "rubber"},
               "max_size": {"count": 20}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let rubber = live(&app, &created["id"]).await;
    assert_eq!(
        rubber["estimate"]["basis"]["basis"], "interactions",
        "{rubber}"
    );
    assert_eq!(rubber["estimate"]["target_items"], 1, "{rubber}");
    let (_, page) = app
        .admin_get(&format!("/api/v1/audiences/{}/members", created["id"]))
        .await;
    let members = page["members"].as_array().expect("members");
    let sandal_fans = members
        .iter()
        .filter(|m| {
            m["user_id"]
                .as_str()
                .is_some_and(|u| u.starts_with("sandal-fan-"))
        })
        .count();
    assert!(
        !members.is_empty() && sandal_fans * 2 > members.len(),
        "mostly the people who engage with that sandal: {page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unseen_value_is_accepted_with_suggestions_and_an_empty_audience_says_why() {
    let app = TestApp::spawn().await;
    trained_shop(&app).await;

    // Typed before any item has it: accepted, with the close value a user may have meant.
    let (s, created) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "Northwind (typo)", "target": {"column": "brand", "value": "northwind"}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let warning = &created["warnings"][0];
    assert_eq!(warning["field"], "target.value", "{created}");
    assert_eq!(warning["suggestions"], json!(["Northwind"]), "{created}");
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m.contains("did you mean \"Northwind\"")),
        "{warning}"
    );
    // Nothing to rank by: an empty live audience with a plain reason, not everyone at 0.
    let audience = live(&app, &created["id"]).await;
    assert_eq!(audience["size"], 0, "{audience}");
    let estimate = &audience["estimate"];
    assert_eq!(estimate["basis"]["basis"], "none", "{estimate}");
    assert!(
        estimate["size_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no item has brand = \"northwind\" yet")),
        "{estimate}"
    );

    // Its preview has no curve, and says why.
    let (s, preview) = post(
        &app,
        "/api/v1/audiences/preview",
        json!({"target": {"column": "brand", "value": "northwind"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{preview}");
    assert_eq!(
        (&preview["basis"]["basis"], &preview["curve"]),
        (&json!("none"), &json!([])),
        "{preview}"
    );

    // A new item whose columns no engaged item shares: also empty, saying so.
    let csv = "item_id,brand,category\nzz-1,Zephyr,Kites\n";
    let (s, b) = upload_form(&app, curl_form("file", "kites.csv", csv)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, created) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "Kites", "target": {"column": "category", "value": "Kites"}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    assert!(
        created.get("warnings").is_none(),
        "an item holds it: {created}"
    );
    let audience = live(&app, &created["id"]).await;
    assert_eq!(audience["size"], 0, "{audience}");
    assert!(
        audience["estimate"]["basis"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no engaged item shares any of its column values")),
        "{audience}"
    );

    // Impossible input is still refused: a column no catalog has.
    let (s, b) = post(
        &app,
        "/api/v1/audiences",
        json!({"name": "x", "target": {"column": "colour", "value": "red"}}),
    )
    .await;
    assert_error(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no column \"colour\"",
    );
}

#[tokio::test]
async fn multipart_uploads_name_a_wrong_part_or_format_precisely() {
    let app = TestApp::spawn().await;
    let (s, b) = put_catalog(&app, &Shop::config()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    ready_catalog(&app).await;

    let (s, b) = upload_form(&app, curl_form("data", "items.csv", ITEMS_CSV)).await;
    assert_error(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a part named \"file\" (curl -F file=@items.csv); this request's parts: \"data\"",
    );
    assert_eq!(b["error"]["code"], "invalid_catalog_file", "{b}");
    let (s, b) = upload_form(&app, curl_form("file", "items.xlsx", ITEMS_CSV)).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "is .xlsx");
    // A JSONL file by its name; its rows are checked as a raw upload's are.
    let (s, b) = upload_form(
        &app,
        curl_form(
            "file",
            "items.jsonl",
            "{\"item_id\":\"a\"}\n{\"brand\":\"x\"}\n",
        ),
    )
    .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "item_id");
    let (s, b) = upload_form(
        &app,
        curl_form(
            "file",
            "items.jsonl",
            "{\"item_id\":\"a\",\"brand\":\"x\"}\n",
        ),
    )
    .await;
    assert_eq!((s, &b["format"]), (StatusCode::OK, &json!("jsonl")), "{b}");
    // A multipart content type without a readable body.
    let r = app
        .client
        .post(app.url("/api/v1/catalog/items"))
        .bearer_auth(ADMIN)
        .header("content-type", "multipart/form-data")
        .body("item_id\na\n");
    let (s, b) = app.send(r).await;
    assert_error(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "curl -F file=@items.csv",
    );
    // The raw-body upload still works as before.
    let (s, b) = app
        .upload_catalog("item_id,brand\nb,y\n", Some("text/csv"))
        .await;
    assert_eq!((s, &b["new_items"]), (StatusCode::OK, &json!(1)), "{b}");
}
