//! Stack extraction: the functions of the primary run's crash backtrace
//! that are worth probing. (Placeholder until the full extractor lands.)

pub struct Extracted {
    pub functions: Vec<String>,
    pub filtered: Vec<String>,
}

/// Function names of the triggered exit's backtrace in the scheduler log.
pub fn stack_functions(sched_log: &[String], _sched_ext_dump: &[String], _console: &str) -> Extracted {
    Extracted { functions: crate::crash::exit_backtrace(sched_log), filtered: Vec::new() }
}
