//! What pickers need: the event names seen, their properties, observed values.

use affinity_store::{DiscoveryTotals, EventDiscovery, EventPage, PropertyValues, ValuesQuery};

use crate::Engine;
use crate::engine::blocking;
use crate::error::{EngineError, Result};

impl Engine {
    /// One page of the event names seen (with counts and property keys), in name order after
    /// `after`, and the store-wide figures.
    pub async fn events(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(EventPage, DiscoveryTotals)> {
        let store = self.store.clone();
        blocking(move || {
            let page = store.events_page(after.as_deref(), limit)?;
            Ok((page, store.discovery_totals()?))
        })
        .await
    }

    /// Observed values of one property of one event, most frequent first.
    pub async fn property_values(
        &self,
        event: String,
        property: String,
        prefix: Option<String>,
        limit: usize,
    ) -> Result<PropertyValues> {
        let store = self.store.clone();
        blocking(move || {
            let Some(summary) = store.event(&event)? else {
                return Err(EngineError::NotFound(format!(
                    "no track event named {event:?} has been received; GET /api/v1/events lists the names seen"
                )));
            };
            if !summary.properties.iter().any(|(p, _)| *p == property) {
                let names: Vec<&str> = summary
                    .properties
                    .iter()
                    .take(20)
                    .map(|(p, _)| p.as_str())
                    .collect();
                return Err(EngineError::NotFound(format!(
                    "event {event:?} has no property {property:?}; its properties are: {}",
                    names.join(", ")
                )));
            }
            Ok(store.property_values(&ValuesQuery {
                event: &event,
                property: &property,
                prefix: prefix.as_deref(),
                limit,
            })?)
        })
        .await
    }
}
