"""A test app with schedules: every second, in each catch-up mode, and one whose runs never
end (for the overlap rules)."""

from __future__ import annotations

from steadyhand import App, Context, Step

app = App()


@app.agent()
def noop(ctx: Context) -> None:
    return None


app.workflow("tick", [Step("only", noop)])
app.workflow("endless", [Step("wait", noop, wait_for="never.comes")])
app.schedule("all", workflow="tick", every=1, catch_up="all", overlap="allow")
app.schedule("latest", workflow="tick", every=1, catch_up="latest")
app.schedule("none", workflow="tick", every=1, catch_up="none")

overlapping = App()
overlapping.agent()(noop)
overlapping.workflow("endless", [Step("wait", noop, wait_for="never.comes")])
overlapping.schedule("skipper", workflow="endless", every=1, overlap="skip")
overlapping.schedule("canceller", workflow="endless", every=1, overlap="cancel_previous")
