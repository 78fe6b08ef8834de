//! Settings of the session features a C2S listener offers: stream management,
//! client state indication and FAST, each in the terms of its MongooseIM module.

use std::time::Duration;

/// XEP-0198 settings, in MongooseIM's `mod_stream_management` terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmConfig {
    /// Most unacknowledged stanzas kept for a session (`buffer_max`); past it the
    /// stream ends with `resource-constraint`. `None`: no limit ("infinity").
    pub buffer_max: Option<usize>,
    /// Ask the client for an ack (`<r/>`) after this many stanzas (`ack_freq`);
    /// `None`: never ask ("never").
    pub ack_freq: Option<u32>,
    /// How long a broken session waits to be resumed (`resume_timeout`).
    pub resume_timeout: Duration,
}

impl Default for SmConfig {
    /// MongooseIM's defaults: 100 stanzas, an ack after each, 600 s.
    fn default() -> Self {
        Self {
            buffer_max: Some(100),
            ack_freq: Some(1),
            resume_timeout: Duration::from_secs(600),
        }
    }
}

/// XEP-0352 settings, in MongooseIM's `mod_csi` terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsiConfig {
    /// Most stanzas held back for an inactive client before they are all sent.
    pub buffer_max: usize,
}

/// XEP-0484 settings, in MongooseIM's `mod_fast_auth_token` terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastConfig {
    /// Lifetime of a token (`validity_period.access`).
    pub access: Duration,
    /// A token this close to its expiry is replaced on use
    /// (`validity_period.rotate_before_expire`).
    pub rotate_before_expire: Duration,
}

impl Default for FastConfig {
    /// MongooseIM's defaults: 3 days, rotated 6 hours before expiry.
    fn default() -> Self {
        Self {
            access: Duration::from_secs(3 * 86_400),
            rotate_before_expire: Duration::from_secs(6 * 3600),
        }
    }
}
