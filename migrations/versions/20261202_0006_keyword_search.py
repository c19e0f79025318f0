"""keyword search: a weighted full-text document and a trigram index on the normalised title

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:00:00

`search_vector` is the course's weighted document (title A, skills B, provider C, description D),
each field in two forms: stemmed with the text-search configuration of the course's language
(the BCP 47 primary subtag; 'simple' for a language PostgreSQL has no configuration for) and
unstemmed ('simple'), so a query matches by stem in the course's language and by exact word in
any language. `search_title` is the title lower-cased with punctuation folded to single spaces:
exact-title matching and the trigram index (typo tolerance) use it. Both are generated columns,
so every path that writes a row keeps them right.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# BCP 47 primary subtag -> the PostgreSQL text-search configuration of that language.
LANGUAGES = {
    "ar": "arabic",
    "ca": "catalan",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "eu": "basque",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nb": "norwegian",
    "ne": "nepali",
    "nl": "dutch",
    "nn": "norwegian",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}

_CASES = "\n".join(
    f"        WHEN '{tag}' THEN '{cfg}'::regconfig" for tag, cfg in LANGUAGES.items()
)

FUNCTIONS = [
    f"""
CREATE FUNCTION coursewise_regconfig(language text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE lower(split_part(coalesce(language, ''), '-', 1))
{_CASES}
        ELSE 'simple'::regconfig
    END
$$
""",
    """
CREATE FUNCTION coursewise_normalise(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT btrim(regexp_replace(lower(coalesce(value, '')), '[^[:alnum:]]+', ' ', 'g'))
$$
""",
    """
CREATE FUNCTION coursewise_search_document(
    title text, skills text[], provider text, description text, language text
) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector(coursewise_regconfig(language), coalesce(title, ''))
                     || to_tsvector('simple', coalesce(title, '')), 'A')
        || setweight(to_tsvector(coursewise_regconfig(language),
                                 coalesce(array_to_string(skills, ' , '), ''))
                     || to_tsvector('simple', coalesce(array_to_string(skills, ' , '), '')), 'B')
        || setweight(to_tsvector(coursewise_regconfig(language), coalesce(provider, ''))
                     || to_tsvector('simple', coalesce(provider, '')), 'C')
        || setweight(to_tsvector(coursewise_regconfig(language), coalesce(description, ''))
                     || to_tsvector('simple', coalesce(description, '')), 'D')
$$
""",
]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for function in FUNCTIONS:
        op.execute(function)
    op.execute(
        "ALTER TABLE courses ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
        "(coursewise_search_document(title, skills, provider, description, language)) STORED"
    )
    op.execute(
        "ALTER TABLE courses ADD COLUMN search_title text GENERATED ALWAYS AS "
        "(coursewise_normalise(title)) STORED"
    )
    op.execute("CREATE INDEX ix_courses_search_vector ON courses USING gin (search_vector)")
    op.execute(
        "CREATE INDEX ix_courses_search_title_trgm ON courses USING gin (search_title gin_trgm_ops)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_courses_search_title_trgm")
    op.execute("DROP INDEX IF EXISTS ix_courses_search_vector")
    op.execute("ALTER TABLE courses DROP COLUMN IF EXISTS search_title")
    op.execute("ALTER TABLE courses DROP COLUMN IF EXISTS search_vector")
    op.execute("DROP FUNCTION IF EXISTS coursewise_search_document(text, text[], text, text, text)")
    op.execute("DROP FUNCTION IF EXISTS coursewise_normalise(text)")
    op.execute("DROP FUNCTION IF EXISTS coursewise_regconfig(text)")
    # pg_trgm stays: other objects may use it, and it costs nothing unused.
