//! What pickers need: the event names seen, their properties, observed values.

use affinity_store::{EventDiscovery, EventSummary, PropertyValues, ValuesQuery};

use crate::Engine;
use crate::engine::blocking;
use crate::error::{EngineError, Result};

impl Engine {
    /// Event names seen, with counts and property keys.
    pub async fn events(&self) -> Result<Vec<EventSummary>> {
        let store = self.store.clone();
        blocking(move || Ok(store.events()?)).await
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
            let known = store.events()?;
            let Some(summary) = known.iter().find(|e| e.name == event) else {
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
