//! On-disk segmented log (to be written).
