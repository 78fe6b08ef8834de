//! Meerkat on tokio: accept loops, one driver per connection, timers, storage executor.
