//! Function chaining, as in the Durable Functions "Hello cities" sample:
//! the orchestrator `HelloCities` calls the activity `SayHello` for three
//! cities, one after the other, and returns the three greetings.

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};

cairn_sdk::register! {
    orchestrators: { "HelloCities" => hello_cities },
    activities: { "SayHello" => say_hello },
}

/// Returns `["Hello Tokyo!", "Hello Seattle!", "Hello London!"]`.
fn hello_cities(
    ctx: &OrchestrationContext,
    _input: serde_json::Value,
) -> Result<Vec<String>, Failure> {
    let mut greetings = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        greetings.push(ctx.call_activity("SayHello", city)?);
    }
    Ok(greetings)
}

fn say_hello(_ctx: &ActivityContext, name: String) -> Result<String, Failure> {
    Ok(format!("Hello {name}!"))
}
