//! Live recommendations and similar items from the serving model, traits computed onto
//! profiles, and the Segment-compatible Profile API.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::catalog::{put_catalog, ready_catalog};
use crate::models::{finished, send_synthetic, synthetic_catalog, train};
use crate::support::{ADMIN, TestApp, assert_error, poll_until, problem_fields};
use crate::traits::trained_shop;

const PROFILE_TOKEN: &str = "prf_test";

async fn trained_app() -> TestApp {
    let app = TestApp::spawn().await;
    send_synthetic(&app, 6_000).await;
    put_catalog(&app, &synthetic_catalog()).await;
    ready_catalog(&app).await;
    let (_, job) = train(&app, json!({})).await;
    let model = finished(&app, &job["model_id"]).await;
    assert_eq!(model["status"], "ready", "{model}");
    app
}

fn values(body: &Value, list: &str, key: &str) -> Vec<String> {
    body[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list}: {body}"))
        .iter()
        .map(|r| match &r[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn scores(body: &Value, list: &str) -> Vec<f64> {
    body[list]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["score"].as_f64().expect("score"))
        .collect()
}

async fn interacted_items(app: &TestApp, user: &str) -> HashSet<String> {
    let mut items = HashSet::new();
    for e in app.events_of(&format!("user_id:{user}")).await {
        let props = &e["message"]["properties"];
        if let Some(id) = props["product_id"].as_str() {
            items.insert(id.to_string());
        }
        for p in props["products"].as_array().into_iter().flatten() {
            items.insert(p["product_id"].as_str().expect("id").to_string());
        }
    }
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_answer_every_parameter() {
    let app = TestApp::spawn().await;
    let (s, b) = app.admin_get("/api/v1/users/u0/recommendations").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("model_not_ready"))
    );
    drop(app);
    let app = trained_app().await;

    let (s, recs) = app.admin_get("/api/v1/users/u0/recommendations").await;
    assert_eq!(s, StatusCode::OK, "{recs}");
    assert_eq!(
        (
            recs["user_id"].as_str(),
            recs["column"].as_str(),
            recs["fallback"].as_bool()
        ),
        (Some("u0"), Some("item_id"), Some(false))
    );
    let items = values(&recs, "recommendations", "value");
    assert_eq!(items.len(), 10);
    assert_eq!(items.iter().collect::<HashSet<_>>().len(), 10, "no repeats");
    let sc = scores(&recs, "recommendations");
    assert!(sc.windows(2).all(|w| w[0] >= w[1]), "best first: {sc:?}");
    let (_, again) = app.admin_get("/api/v1/users/u0/recommendations").await;
    assert_eq!(again, recs, "deterministic");

    let seen = interacted_items(&app, "u0").await;
    assert!(!seen.is_empty());
    let (_, fresh) = app
        .admin_get("/api/v1/users/u0/recommendations?exclude_interacted=true&k=25")
        .await;
    let fresh = values(&fresh, "recommendations", "value");
    assert_eq!(fresh.len(), 25);
    assert!(
        fresh.iter().all(|i| !seen.contains(i)),
        "interacted items excluded"
    );

    let (_, brands) = app
        .admin_get("/api/v1/users/u0/recommendations?column=brand&k=3")
        .await;
    let brands = values(&brands, "recommendations", "value");
    assert_eq!(brands.len(), 3);
    assert!(brands.iter().all(|b| b.starts_with("Brand ")), "{brands:?}");
    assert_eq!(brands.iter().collect::<HashSet<_>>().len(), 3);

    let (_, filtered) = app
        .admin_get("/api/v1/users/u0/recommendations?filter=category:Category%2001&k=5")
        .await;
    for item in values(&filtered, "recommendations", "value") {
        let (_, detail) = app
            .admin_get(&format!("/api/v1/catalog/items/{item}"))
            .await;
        assert_eq!(detail["columns"]["category"], "Category 01", "{item}");
    }
    let (_, excluded) = app
        .admin_get("/api/v1/users/u0/recommendations?exclude=category:Category%2001&k=30")
        .await;
    for item in values(&excluded, "recommendations", "value") {
        let (_, detail) = app
            .admin_get(&format!("/api/v1/catalog/items/{item}"))
            .await;
        assert_ne!(detail["columns"]["category"], "Category 01", "{item}");
    }

    let (s, unknown) = app
        .admin_get("/api/v1/users/nobody-at-all/recommendations?k=3")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(unknown["fallback"], true);
    assert!(
        unknown["fallback_reason"]
            .as_str()
            .expect("reason")
            .contains("unknown user")
    );
    assert_eq!(values(&unknown, "recommendations", "value").len(), 3);

    let bad = [
        (
            "/api/v1/users/u0/recommendations?k=0",
            StatusCode::BAD_REQUEST,
            "k",
        ),
        (
            "/api/v1/users/u0/recommendations?k=101",
            StatusCode::BAD_REQUEST,
            "k",
        ),
        (
            "/api/v1/users/u0/recommendations?column=colour",
            StatusCode::NOT_FOUND,
            "colour",
        ),
        (
            "/api/v1/users/u0/recommendations?exclude_interacted=maybe",
            StatusCode::BAD_REQUEST,
            "exclude_interacted",
        ),
        (
            "/api/v1/users/u0/recommendations?filter=brand",
            StatusCode::BAD_REQUEST,
            "filter",
        ),
        (
            "/api/v1/users/u0/recommendations?filter=colour:red",
            StatusCode::BAD_REQUEST,
            "colour",
        ),
    ];
    for (path, status, mentions) in bad {
        let (s, b) = app.admin_get(path).await;
        assert_eq!(s, status, "{path}: {b}");
        assert_error(s, &b, status, mentions);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_items_follow_co_engagement_with_filters_and_windows() {
    let app = trained_app().await;
    // The most popular item has the most evidence.
    let (_, top) = app
        .admin_get("/api/v1/catalog/columns/item_id/values?limit=1")
        .await;
    let item = top["values"][0]["value"]
        .as_str()
        .expect("item")
        .to_string();
    let (s, sim) = app
        .admin_get(&format!("/api/v1/items/{item}/similar?k=8"))
        .await;
    assert_eq!(s, StatusCode::OK, "{sim}");
    assert_eq!(sim["fallback"], false);
    let ids = values(&sim, "similar", "item_id");
    assert_eq!(ids.len(), 8);
    assert!(!ids.contains(&item), "never the item itself");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 8);
    let sc = scores(&sim, "similar");
    assert!(sc.windows(2).all(|w| w[0] >= w[1]) && sc[0] > 0.0, "{sc:?}");

    let (_, recent) = app
        .admin_get(&format!("/api/v1/items/{item}/similar?k=8&lookback_days=3"))
        .await;
    assert_ne!(
        recent["similar"], sim["similar"],
        "a short window changes the evidence"
    );
    let (_, detail) = app
        .admin_get(&format!("/api/v1/catalog/items/{item}"))
        .await;
    let brand = detail["columns"]["brand"]
        .as_str()
        .expect("brand")
        .to_string();
    let (_, same_brand) = app
        .admin_get(&format!(
            "/api/v1/items/{item}/similar?k=5&column=brand&value={}",
            brand.replace(' ', "%20")
        ))
        .await;
    for other in values(&same_brand, "similar", "item_id") {
        let (_, d) = app
            .admin_get(&format!("/api/v1/catalog/items/{other}"))
            .await;
        assert_eq!(d["columns"]["brand"], brand.as_str());
    }

    let (s, b) = app.admin_get("/api/v1/items/no-such-item/similar").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, _) = app
        .admin_get(&format!("/api/v1/items/{item}/similar?column=brand"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A new item nobody engaged with falls back to items sharing its columns.
    let csv = format!("item_id,brand,category\nsku-new,{brand},Category 03\n");
    let (s, _) = app.upload_catalog(csv, Some("text/csv")).await;
    assert_eq!(s, StatusCode::OK);
    let (_, job) = train(&app, json!({})).await;
    finished(&app, &job["model_id"]).await;
    let (s, cold) = app.admin_get("/api/v1/items/sku-new/similar?k=5").await;
    assert_eq!(s, StatusCode::OK, "{cold}");
    assert_eq!(cold["fallback"], true);
    let first = values(&cold, "similar", "item_id")[0].clone();
    let (_, d) = app
        .admin_get(&format!("/api/v1/catalog/items/{first}"))
        .await;
    assert!(
        d["columns"]["brand"] == brand.as_str() || d["columns"]["category"] == "Category 03",
        "{d}"
    );
}

async fn wait_computed(app: &TestApp, name: &str) -> Value {
    poll_until("the trait computation", Duration::from_secs(30), || async {
        let (_, list) = app.admin_get("/api/v1/traits").await;
        list["traits"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == name))
            .filter(|t| t["status"] == "computed")
            .cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traits_defined_before_a_model_are_computed_by_every_training() {
    let app = TestApp::spawn().await;
    send_synthetic(&app, 3_000).await;
    put_catalog(&app, &synthetic_catalog()).await;
    ready_catalog(&app).await;
    let (s, b) = app
        .send(
            app.client
                .post(app.url("/api/v1/traits"))
                .bearer_auth(ADMIN)
                .json(&json!({"name": "top_brands", "column": "brand", "k": 2})),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::CREATED, Some("waiting_for_model")),
        "{b}"
    );
    let (_, list) = app.admin_get("/api/v1/traits").await;
    assert_eq!(list["traits"][0]["status"], "pending", "{list}");

    let (_, job) = train(&app, json!({})).await;
    let first = finished(&app, &job["model_id"]).await;
    let t = wait_computed(&app, "top_brands").await;
    assert_eq!(t["model_id"], first["id"], "{t}");
    assert!(t["profiles"].as_u64().expect("n") > 100, "{t}");

    // A retraining recomputes it with the new model.
    let (_, job) = train(&app, json!({"seed": 7})).await;
    let second = finished(&app, &job["model_id"]).await;
    assert_ne!(first["id"], second["id"]);
    poll_until(
        "the trait's recomputation after the second training",
        Duration::from_secs(30),
        || async {
            let (_, list) = app.admin_get("/api/v1/traits").await;
            let t = &list["traits"][0];
            (t["status"] == "computed" && t["model_id"] == second["id"]).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traits_are_written_onto_profiles_and_read_like_segment() {
    let app = trained_app().await;
    let post = |body: Value| {
        app.client
            .post(app.url("/api/v1/traits"))
            .bearer_auth(ADMIN)
            .json(&body)
    };
    let (s, b) = app.send(post(json!({"name": "Bad Name", "column": "colour", "k": 11, "exclude": [{"column": "brand"}]}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let fields = problem_fields(&b);
    assert_eq!(fields, vec!["name", "column", "k", "exclude[0]"]);

    let (s, b) = app
        .send(post(json!({"name": "recommended_brands", "column": "brand", "k": 3, "exclude_interacted": false,
                          "exclude": [{"column": "category", "in": ["Category 00"]}]})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["status"], "queued");
    let (s, _) = app.send(post(json!({"name": "recommended_items"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let t = wait_computed(&app, "recommended_brands").await;
    assert!(t["profiles"].as_u64().expect("n") > 100, "{t}");
    wait_computed(&app, "recommended_items").await;

    // Exactly as Segment's docs show: curl -u TOKEN: …/traits
    let url = app.url("/v1/spaces/any-space/collections/users/profiles/user_id:u0/traits");
    let out = std::process::Command::new("curl")
        .args(["-s", "-u", &format!("{PROFILE_TOKEN}:"), &url])
        .output()
        .expect("curl");
    let body: Value = serde_json::from_slice(&out.stdout).expect("json");
    let brands = body["traits"]["recommended_brands"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(brands.len(), 3);
    assert_eq!(
        body["traits"]["recommended_items"].as_array().map(Vec::len),
        Some(5),
        "default k is 5"
    );
    assert_eq!(
        body["traits"]["email"], "user0@example.com",
        "identify traits are there too"
    );
    assert_eq!(body["cursor"]["has_more"], false);

    // The live endpoint agrees with the written trait (same model, same rules).
    let (_, live) = app
        .admin_get(
            "/api/v1/users/u0/recommendations?column=brand&k=3&exclude=category:Category%2000",
        )
        .await;
    assert_eq!(
        json!(values(&live, "recommendations", "value")),
        json!(brands)
    );

    let get = |path: &str, token: &str| {
        app.client
            .get(app.url(&format!("/v1/spaces/s1/collections/users/profiles/{path}")))
            .basic_auth(token, Some(""))
    };
    let (_, v) = app
        .send(get(
            "user_id:u0/traits?verbose=true&include=recommended_brands,plan",
            PROFILE_TOKEN,
        ))
        .await;
    assert_eq!(v["traits"].as_object().map(|o| o.len()), Some(2), "{v}");
    assert_eq!(v["traits"]["recommended_brands"]["value"], json!(brands));
    assert!(v["traits"]["plan"]["updated_at"].as_str().is_some(), "{v}");
    let (_, page) = app
        .send(get("user_id:u0/traits?limit=2", PROFILE_TOKEN))
        .await;
    assert_eq!(page["traits"].as_object().map(|o| o.len()), Some(2));
    assert_eq!(page["cursor"]["has_more"], true);
    let next = page["cursor"]["next"].as_str().expect("next").to_string();
    let (_, rest) = app
        .send(get(
            &format!("user_id:u0/traits?limit=10&next={next}"),
            PROFILE_TOKEN,
        ))
        .await;
    let first: HashSet<&String> = page["traits"].as_object().expect("o").keys().collect();
    let second: HashSet<&String> = rest["traits"].as_object().expect("o").keys().collect();
    assert!(
        first.is_disjoint(&second) && first.len() + second.len() == 4,
        "{page} {rest}"
    );
    let (_, computed) = app
        .send(get("user_id:u0/traits?class=computed_trait", PROFILE_TOKEN))
        .await;
    let keys: Vec<&String> = computed["traits"].as_object().expect("o").keys().collect();
    assert_eq!(keys, vec!["recommended_brands", "recommended_items"]);
    // An anonymous id linked to the user resolves to the user's profile.
    let (_, anon) = app
        .send(get(
            "anonymous_id:anon-0/traits?include=recommended_brands",
            PROFILE_TOKEN,
        ))
        .await;
    assert_eq!(anon["traits"]["recommended_brands"], json!(brands));

    let (s, b) = app.send(get("user_id:nobody/traits", PROFILE_TOKEN)).await;
    assert_eq!(
        (s, b),
        (
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "not_found", "message": "Profile was not found."}})
        )
    );
    let (s, b) = app.send(get("user_id:u0/traits", "wrong")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("authentication_error"))
    );
    let (s, _) = app.send(get("user_id:u0/traits", ADMIN)).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the admin token is not a Profile API token"
    );
    let (s, b) = app.send(get("email:x/traits", PROFILE_TOKEN)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request_error"))
    );
    let (s, _) = app
        .send(get("user_id:u0/traits?limit=201", PROFILE_TOKEN))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// The price of each item of a list (items without one are left out).
async fn prices(app: &TestApp, items: &[String]) -> Vec<f64> {
    let mut out = Vec::new();
    for item in items {
        let (_, d) = app
            .admin_get(&format!("/api/v1/catalog/items/{item}"))
            .await;
        out.extend(d["columns"]["price"].as_f64());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_are_checked_like_traits_and_unknown_values_get_a_hint() {
    let app = trained_shop().await;
    let recs = "/api/v1/users/u0/recommendations";

    // A numeric range is applied, not ignored.
    let (s, cheap_out) = app
        .admin_get(&format!("{recs}?k=30&exclude=price:below:250"))
        .await;
    assert_eq!(s, StatusCode::OK, "{cheap_out}");
    let items = values(&cheap_out, "recommendations", "value");
    assert_eq!(items.len(), 30, "{cheap_out}");
    let p = prices(&app, &items).await;
    assert_eq!(p.len(), 30);
    assert!(
        p.iter().all(|&p| p >= 250.0),
        "items under 250 came back: {p:?}"
    );
    let (_, all) = app.admin_get(&format!("{recs}?k=30")).await;
    let p = prices(&app, &values(&all, "recommendations", "value")).await;
    assert!(
        p.iter().any(|&p| p < 250.0),
        "the filter must have had something to remove: {p:?}"
    );
    let (_, both) = app
        .admin_get(&format!(
            "{recs}?k=10&exclude=price:below:100,price:above:300,brand:Brand%20001"
        ))
        .await;
    for item in values(&both, "recommendations", "value") {
        let (_, d) = app
            .admin_get(&format!("/api/v1/catalog/items/{item}"))
            .await;
        let price = d["columns"]["price"].as_f64().expect("price");
        assert!(
            (100.0..=300.0).contains(&price) && d["columns"]["brand"] != "Brand 001",
            "{d}"
        );
    }

    // Malformed or impossible filters: a 400 naming the parameter and the accepted forms.
    let bad = [
        ("exclude=price:below:abc", "below needs a number"),
        ("exclude=price:below:", "below needs a number"),
        ("exclude=price", "column:below:N or column:above:N"),
        ("exclude=brand:below:5", "no item has a number in \"brand\""),
        (
            "exclude=price:below:500,price:above:100",
            "exclude every item",
        ),
        ("exclude=colour:red", "unknown column \"colour\""),
        ("filter=price:below:5", "exclude=price:above:N"),
        ("filter=colour:red", "unknown column \"colour\""),
    ];
    for (query, mentions) in bad {
        let (s, b) = app.admin_get(&format!("{recs}?{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {b}");
        assert_error(s, &b, StatusCode::BAD_REQUEST, mentions);
        let parameter = query.split('=').next().expect("name");
        assert!(
            b["error"]["message"]
                .as_str()
                .expect("message")
                .contains(&format!("`{parameter}`")),
            "{query}: {b}"
        );
    }

    // A value no item holds: the empty answer says why, with the value that was meant.
    let (s, b) = app
        .admin_get(&format!("{recs}?filter=brand:brand%20001"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["recommendations"], json!([]));
    let w = &b["warnings"][0];
    assert_eq!(
        (&w["parameter"], &w["column"], &w["value"]),
        (&json!("filter"), &json!("brand"), &json!("brand 001")),
        "{b}"
    );
    assert_eq!(w["suggestions"][0], "Brand 001", "{b}");
    assert!(
        w["message"]
            .as_str()
            .expect("m")
            .contains("did you mean \"Brand 001\""),
        "{b}"
    );
    let (_, b) = app
        .admin_get(&format!("{recs}?exclude=brand:Brand%20001x"))
        .await;
    assert_eq!(b["warnings"][0]["parameter"], "exclude", "{b}");
    let (_, b) = app
        .admin_get(&format!("{recs}?filter=brand:Brand%20001"))
        .await;
    assert!(
        b.get("warnings").is_none(),
        "no warning for a value items hold: {b}"
    );
    assert!(!values(&b, "recommendations", "value").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_item_scores_read_from_zero_to_one_and_the_fallback_says_why() {
    let app = trained_shop().await;
    let (_, top) = app
        .admin_get("/api/v1/catalog/columns/item_id/values?limit=1")
        .await;
    let item = top["values"][0]["value"]
        .as_str()
        .expect("item")
        .to_string();
    for window in ["", "&lookback_days=3", "&half_life_days=1"] {
        let (s, sim) = app
            .admin_get(&format!("/api/v1/items/{item}/similar?k=10{window}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{sim}");
        assert_eq!(
            (&sim["fallback"], &sim["score_kind"]),
            (&json!(false), &json!("relative_co_engagement")),
            "{sim}"
        );
        assert!(sim.get("fallback_reason").is_none(), "{sim}");
        let sc = scores(&sim, "similar");
        assert!(sc.len() >= 2, "{sim}");
        if window.is_empty() {
            assert_eq!(sc.len(), 10, "{sim}");
        }
        assert_eq!(sc[0], 1.0, "the best match reads 1.0: {sc:?}");
        assert!(sc.windows(2).all(|w| w[0] >= w[1]), "{sc:?}");
        assert!(
            sc.iter().all(|&s| s > 0.01 && s <= 1.0),
            "readable, in (0, 1]: {sc:?}"
        );
        assert!(
            sc[sc.len() - 1] < 1.0,
            "the scale separates matches: {sc:?}"
        );
    }

    // Nobody engaged with a new item: the fallback answers and says so, scores in [0, 1].
    let (_, detail) = app
        .admin_get(&format!("/api/v1/catalog/items/{item}"))
        .await;
    let brand = detail["columns"]["brand"]
        .as_str()
        .expect("brand")
        .to_string();
    let csv = format!("item_id,brand,category\nsku-new,{brand},Category 03\n");
    let (s, _) = app.upload_catalog(csv, Some("text/csv")).await;
    assert_eq!(s, StatusCode::OK);
    let (_, job) = train(&app, json!({})).await;
    finished(&app, &job["model_id"]).await;
    let (s, cold) = app.admin_get("/api/v1/items/sku-new/similar?k=5").await;
    assert_eq!(s, StatusCode::OK, "{cold}");
    assert_eq!(
        (&cold["fallback"], &cold["score_kind"]),
        (&json!(true), &json!("shared_column_values")),
        "{cold}"
    );
    let reason = cold["fallback_reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {cold}"));
    assert!(
        reason.contains("nobody engaged with \"sku-new\" yet") && reason.contains("column values"),
        "{reason}"
    );
    let sc = scores(&cold, "similar");
    assert!(
        !sc.is_empty() && sc.iter().all(|&s| s > 0.0 && s <= 1.0),
        "{sc:?}"
    );
    // An item with engagement, but none in the window, falls back with the window named.
    let (_, narrow) = app
        .admin_get(&format!(
            "/api/v1/items/{item}/similar?k=5&lookback_days=1&column=brand&value=brand%20001"
        ))
        .await;
    assert_eq!(
        narrow["warnings"][0]["suggestions"][0], "Brand 001",
        "{narrow}"
    );
}
