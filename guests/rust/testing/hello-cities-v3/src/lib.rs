//! A third, compatible version of `hello-cities`: `HelloCities` makes the
//! same activity calls in the same order as version 1 (so running version-1
//! instances replay against it cleanly) but returns the greetings in upper
//! case: `["HELLO TOKYO!", "HELLO SEATTLE!", "HELLO LONDON!"]`.

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};

cairn_sdk::register! {
    orchestrators: { "HelloCities" => hello_cities },
    activities: { "SayHello" => say_hello },
}

fn hello_cities(
    ctx: &OrchestrationContext,
    _input: serde_json::Value,
) -> Result<Vec<String>, Failure> {
    let mut greetings = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        let greeting: String = ctx.call_activity("SayHello", city)?;
        greetings.push(greeting.to_uppercase());
    }
    Ok(greetings)
}

fn say_hello(_ctx: &ActivityContext, name: String) -> Result<String, Failure> {
    Ok(format!("Hello {name}!"))
}
