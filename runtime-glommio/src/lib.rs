//! Meerkat on glommio: an empty shell until issue 3 fills it; it will drive the same engine API as the tokio adapter.
