//! Mapping: the `{{ }}` template language, JSONPath selection, type coercion and the field
//! mappings built on them.

pub mod coerce;
pub mod field_map;
pub mod field_spec;
pub mod jsonpath;
pub mod template;
