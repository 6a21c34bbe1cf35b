use ktstr::prelude::*;

#[ktstr_test(max_spread_pct = -5.0)]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
