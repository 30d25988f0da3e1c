//! Setup mistakes in a catalog configuration, caught where a user can still see them: a
//! mapping naming a property the event never carries (`sku` on events that have
//! `product_id`, a column mapped to `brandx`) is accepted, but warned about with the closest
//! keys the events do carry; after a build, a mapping that found nothing is named, and so is
//! the reason a catalog has no items.

use crate::catalog::{CatalogConfig, PRODUCTS_PREFIX, Problem};
use crate::edit_distance::closest;
use crate::item_catalog::ItemCatalog;

/// How many close keys a warning suggests.
const SUGGESTIONS: usize = 3;

/// The property keys observed on one event (as discovery lists them: top-level keys, and
/// `products[].key` for keys inside products), most used first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedKeys {
    pub messages: u64,
    pub keys: Vec<String>,
    /// The event has more keys than discovery lists: an unlisted key may still exist.
    pub at_limit: bool,
}

/// Whether events with these keys carry `property` where the catalog reads it: a top-level
/// key also matches inside products (the reader falls back to `products[]`, and column values
/// are read from the product first); `products[].key` only inside products.
fn carried(keys: &[String], property: &str) -> bool {
    match property.strip_prefix(PRODUCTS_PREFIX) {
        Some(_) => keys.iter().any(|k| k == property),
        None => keys
            .iter()
            .any(|k| k == property || k.strip_prefix(PRODUCTS_PREFIX) == Some(property)),
    }
}

fn suggestion(keys: &[String], property: &str) -> String {
    let bare = property.strip_prefix(PRODUCTS_PREFIX).unwrap_or(property);
    let close = closest(
        bare,
        keys,
        |k| k.strip_prefix(PRODUCTS_PREFIX).unwrap_or(k),
        SUGGESTIONS,
    );
    if close.is_empty() {
        " (its messages have no properties)".to_string()
    } else {
        format!(
            "; closest keys on it: {}",
            close
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Warnings for mappings whose property never appears on their event. `observed[i]` is
/// event `i`'s keys, None for an event not received yet (warned about elsewhere).
pub fn unseen_properties(
    config: &CatalogConfig,
    observed: &[Option<ObservedKeys>],
) -> Vec<Problem> {
    let mut out = Vec::new();
    let note = |o: &ObservedKeys| {
        if o.at_limit {
            " (this event has more keys than discovery lists, so it may be among the unlisted ones)"
        } else {
            ""
        }
    };
    for (i, (event, seen)) in config.events.iter().zip(observed).enumerate() {
        let Some(o) = seen else { continue };
        let property = event.product_id_property.trim();
        if !carried(&o.keys, property) {
            out.push(Problem {
                field: format!("events[{i}].product_id_property"),
                message: format!(
                    "none of the {} {:?} messages received so far has {property:?} (at the top level or inside products[]), so this event would add no items{}{}",
                    o.messages,
                    event.name,
                    suggestion(&o.keys, property),
                    note(o)
                ),
            });
        }
    }
    for (c, column) in config.columns.iter().enumerate() {
        for (event_name, property) in &column.properties {
            let Some((i, _)) = config.event(event_name) else {
                continue;
            };
            let Some(Some(o)) = observed.get(i) else {
                continue;
            };
            if !carried(&o.keys, property.trim()) {
                out.push(Problem {
                    field: format!("columns[{c}].properties.{event_name}"),
                    message: format!(
                        "none of the {} {event_name:?} messages received so far has {:?}, so column {:?} would get no values from it{}{}",
                        o.messages,
                        property.trim(),
                        column.name,
                        suggestion(&o.keys, property.trim()),
                        note(o)
                    ),
                });
            }
        }
    }
    out
}

/// After a build: each mapping that found nothing in the messages read.
pub fn empty_mappings(catalog: &ItemCatalog) -> Vec<Problem> {
    let config = &catalog.config;
    let y = &catalog.yields;
    let mut out = Vec::new();
    for (i, event) in config.events.iter().enumerate() {
        let messages = y.messages.get(i).copied().unwrap_or(0);
        if messages > 0 && y.with_items.get(i).copied().unwrap_or(0) == 0 {
            out.push(Problem {
                field: format!("events[{i}].product_id_property"),
                message: format!(
                    "none of the {messages} {:?} messages has a product id in {:?}: this event adds no items",
                    event.name, event.product_id_property
                ),
            });
        }
    }
    for (c, column) in config.columns.iter().enumerate() {
        for (event_name, property) in &column.properties {
            let Some((i, _)) = config.event(event_name) else {
                continue;
            };
            let with_items = y.with_items.get(i).copied().unwrap_or(0);
            let values = y
                .column_values
                .get(c)
                .and_then(|v| v.get(i))
                .copied()
                .unwrap_or(0);
            if with_items > 0 && values == 0 {
                out.push(Problem {
                    field: format!("columns[{c}].properties.{event_name}"),
                    message: format!(
                        "none of the items read from {with_items} {event_name:?} messages has a value in {property:?}: column {:?} gets nothing from this event",
                        column.name
                    ),
                });
            }
        }
    }
    out
}

/// Why a built catalog has no interactions, naming each event and its mapping.
pub fn why_empty(catalog: &ItemCatalog) -> String {
    let reasons: Vec<String> = catalog
        .config
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let messages = catalog.yields.messages.get(i).copied().unwrap_or(0);
            if messages == 0 {
                format!("no {:?} event has been received", e.name)
            } else {
                format!(
                    "none of the {messages} {:?} messages has a product id in `product_id_property` {:?}",
                    e.name, e.product_id_property
                )
            }
        })
        .collect();
    format!(
        "the catalog has no interactions: {}; send those events, or fix the mapping (GET /api/v1/events lists each event's property keys)",
        reasons.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item_catalog::CatalogBuilder;
    use serde_json::json;

    fn config(product_id: &str, brand: &str) -> CatalogConfig {
        serde_json::from_value(json!({
            "events": [{"name": "Order Completed", "product_id_property": product_id}],
            "columns": [{"name": "brand", "properties": {"Order Completed": brand}}]
        }))
        .expect("valid shape")
    }

    fn keys() -> Option<ObservedKeys> {
        Some(ObservedKeys {
            messages: 12,
            keys: [
                "order_id",
                "products",
                "products[].product_id",
                "products[].brand",
            ]
            .map(String::from)
            .to_vec(),
            at_limit: false,
        })
    }

    #[test]
    fn a_property_the_event_never_carries_is_warned_with_close_keys() {
        assert!(unseen_properties(&config("product_id", "brand"), &[keys()]).is_empty());
        assert!(
            unseen_properties(
                &config("products[].product_id", "products[].brand"),
                &[keys()]
            )
            .is_empty()
        );
        let w = unseen_properties(&config("sku", "brandx"), &[keys()]);
        let fields: Vec<&str> = w.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "events[0].product_id_property",
                "columns[0].properties.Order Completed"
            ]
        );
        assert!(
            w[1].message
                .contains(r#"closest keys on it: "products[].brand""#),
            "{}",
            w[1].message
        );
        // Not received yet: nothing to compare with.
        assert!(unseen_properties(&config("sku", "brandx"), &[None]).is_empty());
    }

    #[test]
    fn a_build_names_the_mapping_that_found_nothing() {
        let mut b = CatalogBuilder::new(config("sku", "brand"));
        b.add_event(
            1,
            0,
            5,
            &json!({"products": [{"product_id": "a", "brand": "Acme"}]}),
        );
        let c = b.finish();
        assert_eq!(c.items.len(), 0);
        let w = empty_mappings(&c);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].message
                .contains(r#"none of the 1 "Order Completed" messages has a product id in "sku""#),
            "{}",
            w[0].message
        );
        assert!(
            why_empty(&c).contains(r#"product_id_property` "sku""#),
            "{}",
            why_empty(&c)
        );

        let mut b = CatalogBuilder::new(config("product_id", "brandx"));
        b.add_event(
            1,
            0,
            5,
            &json!({"products": [{"product_id": "a", "brand": "Acme"}]}),
        );
        let w = empty_mappings(&b.finish());
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].field, "columns[0].properties.Order Completed");
    }
}
