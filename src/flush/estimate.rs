//! Estimators. (To be written.)
