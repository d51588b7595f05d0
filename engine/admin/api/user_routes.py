from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from engine.admin.deps import Admin, Conn, ReadConn
from engine.admin.roles import Role
from engine.admin.services import accounts

router = APIRouter(tags=["users"])


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    role: Role
    password: str


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = ""


@router.get("/users")
def users(conn: ReadConn, _: Admin) -> list[dict[str, Any]]:
    return [asdict(u) for u in accounts.users(conn)]


@router.post("/users", status_code=201)
def add_user(body: NewUser, conn: Conn, who: Admin) -> dict[str, Any]:
    accounts.add(conn, who, body.name, body.role, body.password)
    return {"name": body.name, "role": body.role}


@router.post("/users/{name}/disable")
def disable_user(name: str, conn: Conn, who: Admin, body: Reason | None = None) -> dict[str, Any]:
    accounts.disable(conn, who, name, body.reason if body else "")
    return {"name": name, "disabled": True}
