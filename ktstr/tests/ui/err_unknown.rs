use ktstr::prelude::*;

#[ktstr_test(llc = 2)]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
