//! MongoDB plumbing shared by the MongoDB store (`store::mongo`) and the
//! `vex.raw` source (`source::mongo`): the connection with its retries, and
//! BSON values read back as JSON. It lives beside both rather than inside
//! the store so that the source, which the store reaches through `parse`,
//! does not import the store back.

pub(crate) mod client;
pub(crate) mod value;
