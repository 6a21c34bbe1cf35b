use ktstr::prelude::*;

#[ktstr_test(cores = 2, cores = 4)]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
