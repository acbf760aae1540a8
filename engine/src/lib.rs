//! backfill engine (overview written once the stages exist).
#![deny(missing_docs)]

pub mod normalize;

pub use normalize::{Claim, Format, Justification, NormalizeError, NormalizedDocument, Status};
