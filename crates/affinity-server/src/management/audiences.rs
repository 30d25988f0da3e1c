//! `/api/v1/audiences`: create (computed in the background), read, members, explanations,
//! preview, refresh (a new snapshot with who entered and exited), delete.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use affinity_core::audience::{AudienceSpec, DEFAULT_HORIZON_DAYS, parse_target, resolve_target};
use affinity_core::timestamp::format_millis;
use affinity_store::{AudienceRecord, AudienceStore, Member};

use super::recommendations::serving;
use super::{blocking, json_body};
use crate::audiences::{AudienceError, compute, expectation_at, score};
use crate::auth::Admin;
use crate::catalog_state::now_ms;
use crate::params::Params;
use crate::{ApiError, AppState};

fn problems_error(problems: Vec<(String, String)>) -> ApiError {
    ApiError::problems("invalid_audience", &problems)
}

fn audience_error(e: AudienceError) -> ApiError {
    match e {
        AudienceError::Target(p) => problems_error(vec![p]),
        AudienceError::Server(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    }
}

fn record_json(r: &AudienceRecord) -> Value {
    let mut out = json!({
        "id": r.id,
        "name": r.name,
        "status": r.status,
        "size": r.size,
        "model_id": r.model_id,
        "created_at": format_millis(r.created_at),
        "computed_at": r.computed_at.map(format_millis),
        "estimate": r.estimate,
        "error": r.error,
        "previous_id": r.previous_id,
        "changes": r.changes,
    });
    for key in [
        "target",
        "max_size",
        "horizon_days",
        "control_percent",
        "destinations",
    ] {
        out[key] = r.spec[key].clone();
    }
    out
}

fn spec_of(r: &AudienceRecord) -> Result<AudienceSpec, ApiError> {
    serde_json::from_value(r.spec.clone()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("stored audience {} is unreadable: {e}", r.id),
        )
    })
}

async fn load(state: &AppState, id: &str) -> Result<AudienceRecord, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_parameter",
            format!("audience id {id:?} must be a number"),
        )
    })?;
    let store = state.store.clone();
    blocking(move || store.audience(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no audience {id}")))
}

/// Starts computing a snapshot in the background; `previous` makes it a refresh.
async fn start(
    state: &AppState,
    spec: AudienceSpec,
    previous: Option<i64>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let model = serving(state)?;
    // Resolve the target now, so a misspelt brand is a 422 with suggestions, not a failure later.
    resolve_target(&model.catalog, &spec.target).map_err(|p| problems_error(vec![p]))?;
    let store = state.store.clone();
    let spec_json = serde_json::to_value(&spec).unwrap_or(Value::Null);
    let name = spec.name.clone();
    let id = blocking(move || store.create_audience(&name, &spec_json, previous, now_ms())).await?;
    let (store, seed) = (state.store.clone(), state.seed);
    tokio::task::spawn_blocking(move || {
        let outcome = compute(&store, &model, &spec, seed)
            .map_err(|e| e.to_string())
            .and_then(|computed| {
                let changes = match previous {
                    Some(p) => {
                        let before = store
                            .audience_members(p, 0, usize::MAX)
                            .map_err(|e| e.to_string())?;
                        Some(crate::audiences::changes(&before, &computed.members, p))
                    }
                    None => None,
                };
                store
                    .finish_audience(
                        id,
                        model.record.id,
                        &computed.members,
                        &computed.estimate,
                        changes.as_ref(),
                        now_ms(),
                    )
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = outcome {
            tracing::warn!(audience = id, error = %e, "audience failed");
            let _ = store.fail_audience(id, &e);
        }
    });
    let store = state.store.clone();
    let record = blocking(move || store.audience(id))
        .await?
        .ok_or_else(|| ApiError::not_found("audience vanished"))?;
    Ok((StatusCode::ACCEPTED, Json(record_json(&record))))
}

/// `POST /api/v1/audiences`.
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: Value = json_body::parse(body).await?;
    let spec = AudienceSpec::parse(&body).map_err(problems_error)?;
    start(&state, spec, None).await
}

/// `POST /api/v1/audiences/{id}/refresh`: a new snapshot of the same definition.
pub async fn refresh(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let record = load(&state, &id).await?;
    if record.status == "computing" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "audience_computing",
            "the audience is still computing; refresh it once it is live",
        ));
    }
    start(&state, spec_of(&record)?, Some(record.id)).await
}

pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let records = blocking(move || store.audiences()).await?;
    Ok(Json(
        json!({"audiences": records.iter().map(record_json).collect::<Vec<_>>()}),
    ))
}

pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(record_json(&load(&state, &id).await?)))
}

pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let record = load(&state, &id).await?;
    let store = state.store.clone();
    blocking(move || store.delete_audience(record.id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn member_json(m: &Member) -> Value {
    json!({"user_id": m.user_id, "score": m.score, "rank": m.rank, "control": m.control})
}

/// `GET /api/v1/audiences/{id}/members?limit=&cursor=`: best first; `next_cursor` pages on.
pub async fn members(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let params = Params(q);
    let limit = params.number("limit", 100, 1, 10_000)?;
    let after: i64 = match params.get("cursor") {
        None => 0,
        Some(c) => c.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("`cursor` {c:?} is not a cursor from a previous page"),
            )
        })?,
    };
    let record = load(&state, &id).await?;
    let store = state.store.clone();
    let page = blocking(move || store.audience_members(record.id, after, limit + 1)).await?;
    let next = (page.len() > limit).then(|| page[limit - 1].rank.to_string());
    Ok(Json(json!({
        "members": page.iter().take(limit).map(member_json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /api/v1/audiences/{id}/members.csv`.
pub async fn members_csv(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = load(&state, &id).await?;
    let store = state.store.clone();
    let all = blocking(move || store.audience_members(record.id, 0, usize::MAX)).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let write = |out: &mut csv::Writer<Vec<u8>>, row: [String; 4]| {
        out.write_record(row).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })
    };
    write(
        &mut out,
        [
            "user_id".into(),
            "score".into(),
            "rank".into(),
            "control".into(),
        ],
    )?;
    for m in &all {
        write(
            &mut out,
            [
                m.user_id.clone(),
                m.score.to_string(),
                m.rank.to_string(),
                m.control.to_string(),
            ],
        )?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response())
}

/// `GET /api/v1/audiences/{id}/members/{user_id}`: one member and why.
pub async fn member(
    _: Admin,
    State(state): State<AppState>,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = load(&state, &id).await?;
    let store = state.store.clone();
    let uid = user_id.clone();
    let found = blocking(move || store.audience_member(record.id, &uid)).await?;
    let member = found.ok_or_else(|| {
        ApiError::not_found(format!("{user_id:?} is not a member of audience {id}"))
    })?;
    let model = serving(&state)?;
    let spec = spec_of(&record)?;
    let estimate = record.estimate.clone();
    let profile = member.profile_id;
    let why = tokio::task::spawn_blocking(move || {
        crate::audiences::explain(&model, &spec, &estimate, profile).map(|w| (w, model.record.id))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(audience_error)?;
    let mut out = member_json(&member);
    out["why"] = why.0;
    out["explained_with_model"] = json!(why.1);
    Ok(Json(out))
}

/// `POST /api/v1/audiences/preview`: `{"target", "horizon_days"}` → the whole size curve.
pub async fn preview(
    _: Admin,
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body: Value = json_body::parse(body).await?;
    let mut problems = Vec::new();
    for key in body
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !["target", "horizon_days"].contains(&key.as_str()) {
            problems.push((
                key,
                "unknown field; preview takes target and horizon_days".to_string(),
            ));
        }
    }
    let target = parse_target(body.get("target"), &mut problems);
    let horizon_days = match body.get("horizon_days") {
        None => DEFAULT_HORIZON_DAYS,
        Some(v) => match v.as_u64() {
            Some(d @ 1..=365) => d as u32,
            _ => {
                problems.push((
                    "horizon_days".into(),
                    format!("must be a whole number of days from 1 to 365; got {v}"),
                ));
                DEFAULT_HORIZON_DAYS
            }
        },
    };
    let Some(target) = target.filter(|_| problems.is_empty()) else {
        return Err(problems_error(problems));
    };
    let model = serving(&state)?;
    let spec = AudienceSpec {
        name: "preview".into(),
        target: target.clone(),
        max_size: affinity_core::audience::MaxSize::Percent { percent: 100.0 },
        horizon_days,
        control_percent: 0.0,
        destinations: Vec::new(),
    };
    let seed = state.seed;
    let (items, scores) = tokio::task::spawn_blocking(move || {
        score(&model, &spec, seed).map(|(items, _, scores)| (items.len(), scores))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(audience_error)?;
    let at_20 = expectation_at(&scores.curve, 0.2);
    Ok(Json(json!({
        "target": target.to_json(),
        "horizon_days": horizon_days,
        "scored_users": scores.ranked.len(),
        "target_items": items,
        "base_rate": scores.base_rate,
        "average_precision": scores.average_precision,
        "curve": scores.curve,
        "at_20_percent": at_20,
        "fallback_reason": scores.fallback_reason,
    })))
}
