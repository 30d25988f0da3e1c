//! Query parameters parsed by hand so that a bad one gets our JSON error naming it, rather
//! than the framework's plain-text rejection.

use std::collections::HashMap;

use crate::ApiError;

pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A whole number in `min..=max`, or `default` when absent.
    pub fn number(
        &self,
        name: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        text.parse::<usize>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("`{name}` must be a whole number from {min} to {max}, got {text:?}"),
                )
            })
    }
}
