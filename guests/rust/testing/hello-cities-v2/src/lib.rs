//! A second, incompatible version of `hello-cities`: `HelloCities` now calls
//! `SayHi` instead of `SayHello`, so replaying a version-1 history against it
//! diverges at task 0. A fresh instance returns
//! `["Hi Tokyo!", "Hi Seattle!", "Hi London!"]`. `SayHello` is still served.

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};

cairn_sdk::register! {
    orchestrators: { "HelloCities" => hello_cities },
    activities: {
        "SayHello" => say_hello,
        "SayHi" => say_hi,
    },
}

fn hello_cities(
    ctx: &OrchestrationContext,
    _input: serde_json::Value,
) -> Result<Vec<String>, Failure> {
    let mut greetings = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        greetings.push(ctx.call_activity("SayHi", city)?);
    }
    Ok(greetings)
}

fn say_hello(_ctx: &ActivityContext, name: String) -> Result<String, Failure> {
    Ok(format!("Hello {name}!"))
}

fn say_hi(_ctx: &ActivityContext, name: String) -> Result<String, Failure> {
    Ok(format!("Hi {name}!"))
}
