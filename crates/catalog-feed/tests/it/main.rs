//! Integration tests of the pull source against a real local feed server.
