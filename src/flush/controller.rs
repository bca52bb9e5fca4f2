//! Rate controller. (To be written.)
