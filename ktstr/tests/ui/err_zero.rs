use ktstr::prelude::*;

#[ktstr_test(threads = 0)]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
