use ktstr::prelude::*;

#[ktstr_test(gauntlet = ["smt-2llc", "smt-4llc"])]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
