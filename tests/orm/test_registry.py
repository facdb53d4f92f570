"""``lineage_nb.orm.registry``: classes by table/name, primary keys from text, the label column."""

from __future__ import annotations

import decimal
import uuid
from typing import ClassVar

import pytest
from models import Project, Sample
from sqlalchemy import Column, Float, ForeignKey, Integer, Numeric, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lineage_nb.errors import UsageError, ValidationError
from lineage_nb.lineage.schema import LineageModel, Run
from lineage_nb.orm.keys import pk_from_text, pk_values, value_from_text
from lineage_nb.orm.registry import (
    LABEL_FIELDS,
    class_by_name,
    class_by_table,
    label_column_of,
    mapped_classes,
)


class Base(DeclarativeBase):
    """A registry of its own, so these classes never join ``ln.Model``'s."""


class Pair(Base):
    __tablename__ = "reg_pair"
    left: Mapped[int] = mapped_column(Integer, primary_key=True)
    right: Mapped[str] = mapped_column(String(10), primary_key=True)
    title: Mapped[str] = mapped_column(String(20))


class Token(Base):
    __tablename__ = "reg_token"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    weight: Mapped[float] = mapped_column(Float)


class Animal(Base):
    __tablename__ = "reg_animal"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    nickname: Mapped[str] = mapped_column(String(10))
    __mapper_args__: ClassVar[dict[str, str]] = {
        "polymorphic_on": "kind",
        "polymorphic_identity": "animal",
    }


class Dog(Animal):  # single-table inheritance: the same table as Animal
    __label_field__ = "nickname"
    __mapper_args__: ClassVar[dict[str, str]] = {"polymorphic_identity": "dog"}


class Leg(Base):
    __tablename__ = "reg_leg"
    id: Mapped[int] = mapped_column(primary_key=True)
    animal_id: Mapped[int] = mapped_column(ForeignKey("reg_animal.id"))


UUID_TEXT = "12345678-1234-5678-1234-567812345678"


# -- classes by table and by name --------------------------------------------------------------
def test_mapped_classes_by_table_prefer_the_base_class() -> None:
    """Each table maps to one class: a single-table subclass does not replace its base."""
    classes = mapped_classes(Base)
    assert classes == {"reg_pair": Pair, "reg_token": Token, "reg_animal": Animal, "reg_leg": Leg}
    assert mapped_classes()["sample"] is Sample  # default: ln.Model's registry
    assert "reg_pair" not in mapped_classes() and "lineage_run" not in mapped_classes()


def test_class_by_table() -> None:
    assert class_by_table("sample") is Sample
    assert class_by_table("project") is Project
    assert class_by_table("Sample") is None  # exact table names only
    assert class_by_table("nothing") is None
    assert class_by_table("lineage_run") is None
    assert class_by_table("lineage_run", LineageModel) is Run
    assert class_by_table("reg_animal", Base) is Animal


def test_class_by_name_exact_then_ignoring_case() -> None:
    """A class name or a table name; exact matches first, then any case."""
    assert class_by_name("Sample") is Sample
    assert class_by_name("sample") is Sample
    assert class_by_name("SAMPLE") is Sample
    assert class_by_name("nothing") is None
    assert class_by_name("Run") is None  # the lineage schema is not searched by default
    assert class_by_name("Run", LineageModel) is Run
    assert class_by_name("lineage_run", LineageModel) is Run
    assert class_by_name("Dog", Base) is Dog
    assert class_by_name("dog", Base) is Dog
    assert class_by_name("reg_animal", Base) is Animal


# -- primary keys from text ----------------------------------------------------------------------
def test_value_from_text_parses_ints_floats_and_uuids() -> None:
    columns = {c.name: c for t in (Pair, Token) for c in t.__table__.columns}  # type: ignore[attr-defined]
    assert value_from_text(columns["left"], "42") == 42
    assert value_from_text(columns["weight"], "2.5") == 2.5
    assert value_from_text(columns["id"], UUID_TEXT) == uuid.UUID(UUID_TEXT)
    assert value_from_text(columns["right"], "42") == "42"  # a string column keeps the text
    with pytest.raises(ValueError, match="invalid literal"):
        value_from_text(columns["left"], "one")
    with pytest.raises(ValueError):
        value_from_text(columns["id"], "not-a-uuid")
    assert value_from_text(columns["left"], "one", strict=False) == "one"
    assert value_from_text(columns["id"], "not-a-uuid", strict=False) == "not-a-uuid"


def test_value_from_text_parses_decimals() -> None:
    """A Numeric key given as text is a Decimal; a bad one is a ValueError like the others."""
    amount = Column("amount", Numeric(10, 2))
    assert value_from_text(amount, "12.50") == decimal.Decimal("12.50")
    with pytest.raises(ValueError, match="'x' is not a decimal number"):
        value_from_text(amount, "x")
    assert value_from_text(amount, "x", strict=False) == "x"


def test_pk_from_text_single_and_composite_keys() -> None:
    """Composite keys are comma separated; a table or a mapped class may be given."""
    assert pk_from_text(Sample, "3") == (3,)
    assert pk_from_text(Sample.__table__, "3") == (3,)
    assert pk_from_text(Pair, "7,x") == (7, "x")
    assert pk_from_text(Token, UUID_TEXT) == (uuid.UUID(UUID_TEXT),)
    with pytest.raises(UsageError, match=r"^sample\.id: '1,2' is not valid$"):
        pk_from_text(Sample, "1,2")  # one key column: the comma is part of the value


def test_pk_from_text_errors() -> None:
    """The messages the command line prints (exit code 2)."""
    with pytest.raises(UsageError) as info:
        pk_from_text(Sample, "one")
    assert str(info.value) == "sample.id: 'one' is not valid"
    with pytest.raises(UsageError) as info:
        pk_from_text(Pair, "7")
    assert str(info.value) == "table 'reg_pair' has 2 primary key column(s); got '7'"
    with pytest.raises(UsageError) as info:
        pk_from_text(Pair, "x,y")
    assert str(info.value) == "reg_pair.left: 'x' is not valid"
    with pytest.raises(UsageError, match=r"^reg_token\.id: 'abc' is not valid$"):
        pk_from_text(Token, "abc")


def test_pk_values_of_the_api() -> None:
    """``Model.get(pk)``'s keys: a value, a tuple/list in key order, or a dict by name."""
    assert pk_values(Sample, 3) == (3,)
    assert pk_values(Pair, (7, "x")) == (7, "x")
    assert pk_values(Pair, [7, "x"]) == (7, "x")
    assert pk_values(Pair, {"right": "x", "left": 7}) == (7, "x")
    assert pk_values(Token, UUID_TEXT) == (uuid.UUID(UUID_TEXT),)
    assert pk_values(Sample, "3") == ("3",)  # only UUID text is parsed here


def test_pk_values_errors() -> None:
    with pytest.raises(ValidationError) as info:
        pk_values(Pair, 7)
    assert info.value.field == "pk" and info.value.model == "Pair"
    assert str(info.value).startswith(
        "Pair.pk: 7 does not fit the primary key ('left', 'right') of Pair."
    )
    assert "Pass a tuple with one value per key column (left, right)" in str(info.value)
    with pytest.raises(ValidationError) as info:
        pk_values(Pair, {"left": 7})
    assert "does not fit the primary key" in str(info.value)
    with pytest.raises(ValidationError) as info:
        pk_values(Sample, (1, 2))
    assert "Pass one value (id)" in str(info.value)
    with pytest.raises(ValidationError) as info:
        pk_values(Token, "abc")
    assert info.value.field == "id"
    assert str(info.value).startswith("Token.id: 'abc' is not a UUID. Pass a uuid.UUID or its")


# -- the column that names a record ----------------------------------------------------------------
def test_label_column_of() -> None:
    assert LABEL_FIELDS[0] == "name"
    assert label_column_of(Sample) == "name"
    assert label_column_of(Pair) == "title"
    assert label_column_of(Dog) == "nickname"  # __label_field__ first
    assert label_column_of(Animal) is None
    assert label_column_of(Token) is None
    assert label_column_of(Leg) is None
