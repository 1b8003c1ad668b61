//! Mapping: the `{{ }}` template language and field mappings built on it.

pub mod field_map;
pub mod template;
