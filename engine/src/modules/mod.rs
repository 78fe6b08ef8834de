//! Module protocol logic used by the hub: roster (RFC 6121 §2), presence and
//! subscriptions (RFC 6121 §3–4), offline messages (XEP-0160), disco (XEP-0030),
//! ping (XEP-0199), software version (XEP-0092).
