//! The front door's unit tests; the table of paths through every entrance is in
//! `tests/front_door.rs`.
