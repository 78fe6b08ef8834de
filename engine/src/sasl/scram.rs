//! SCRAM (RFC 5802, RFC 7677) with channel binding and XEP-0474.
