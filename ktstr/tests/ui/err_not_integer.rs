use ktstr::prelude::*;

#[ktstr_test(cores = "two")]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
