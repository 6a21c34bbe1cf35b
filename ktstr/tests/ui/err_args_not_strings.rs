use ktstr::prelude::*;

#[ktstr_test(scheduler = SCX_KTSTR, extra_sched_args = [1, 2])]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
