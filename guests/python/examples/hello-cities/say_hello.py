"""The activity `SayHello`, written like a Durable Functions activity: a
plain function of its input. Input a name such as "Tokyo"; returns
"Hello Tokyo!"."""

import cairn_sdk as df


def main(name: str) -> str:
    return f"Hello {name}!"


main = df.Activity.create(main, name="SayHello")
