//! The commands of `cargo ktstr` (and of `ktstr`, whose one command,
//! `shell`, is the same code): each module is one command, with its
//! arguments and what it does; `runs` is the run record that `test`
//! writes and `replay` reads; `archive` is the suite bundled on a build
//! machine (`cargo ktstr archive`) and run on others (`test --archive`).

pub mod archive;
pub mod doctor_cmd;
pub mod flake_cmd;
pub mod kernel_cmd;
pub mod matrix_cmd;
pub mod replay_cmd;
pub mod runs;
pub mod sched_cmd;
pub mod shell_cmd;
pub mod test_cmd;
