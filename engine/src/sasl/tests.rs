//! Cross-mechanism tests.
