//! Stack extraction: the functions of the primary run's crash backtrace
//! that are worth probing.

/// Function names of the triggered exit's backtrace in the scheduler log.
pub fn stack_functions(sched_log: &[String]) -> Vec<String> {
    crate::crash::exit_backtrace(sched_log)
}
