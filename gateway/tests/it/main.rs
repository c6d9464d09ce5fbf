//! Behaviour tests of `meingpt-gateway`: one binary, a module per topic.
