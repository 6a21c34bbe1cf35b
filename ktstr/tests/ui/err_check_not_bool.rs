use ktstr::prelude::*;

#[ktstr_test(not_starved = 1)]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
