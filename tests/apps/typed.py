"""A test app whose agents take their input typed: a pydantic model and a dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from steadyhand import App, Context, Step


class Order(BaseModel):
    sku: str
    quantity: int = Field(gt=0)
    note: str | None = None


@dataclass
class Address:
    city: str
    lines: list[str] = field(default_factory=list)


@dataclass
class Parcel:
    weight: float
    to: Address


SEEN: list[object] = []

app = App()


@app.agent()
def reserve(ctx: Context, order: Order) -> dict[str, object]:
    SEEN.append(order)
    return {"reserved": order.quantity}


@app.agent()
async def send(ctx: Context, parcel: Parcel) -> dict[str, object]:
    SEEN.append(parcel)
    return {"city": parcel.to.city}


app.workflow("order", [Step("reserve", reserve)])
app.workflow("parcel", [Step("send", send)])
app.workflow("declared", [Step("send", send)], input=Parcel)
