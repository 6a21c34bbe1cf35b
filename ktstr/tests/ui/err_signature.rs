use ktstr::prelude::*;

#[ktstr_test(llcs = 1)]
fn t() -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
