"""keyword search at scale: narrow heap rows, a head document, functions that survive a restore

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 14:00:00

Keyword candidates (shared/catalog/keyword.py) are found through the GIN indexes: one bitmap
scan per query word, which reads only the heap rows' visibility and ids. Two things made that
slow, and this migration fixes both:

- Rows were wide (about 1.5 kB: the description stayed inline beside its out-of-line document),
  so a common word visited most of the table's pages. `toast_tuple_target = 128` moves the long
  columns (description, the search documents, metadata) out of line; the short ones a listing
  or a candidate reads are `STORAGE MAIN` (kept inline). On 3.4k Coursera courses the heap went
  from 5.1 MB to 2.4 MB.
- Ranking read each match's whole document (title to description) several times over. The new
  `search_head` (title A, skills B, provider C, as in `search_vector`) has its own GIN index, so
  "the words are in the title, skills or provider" is known from an index too; only the best few
  hundred candidates have their whole document read, once, for `ts_rank`.

The search functions are pinned to this schema's search path (`SET search_path FROM CURRENT`):
pg_dump restores with an empty search path, and a generated column whose function calls another
unqualified function failed to restore before.

The GIN indexes on the documents lose their pending list, as 0007 did for the trigram index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = (
    "coursewise_regconfig(text)",
    "coursewise_normalise(text)",
    "coursewise_search_document(text, text[], text, text, text)",
)
HEAD = """
CREATE FUNCTION coursewise_search_head(
    title text, skills text[], provider text, language text
) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT AS $$
    SELECT setweight(to_tsvector(coursewise_regconfig(language), coalesce(title, ''))
                     || to_tsvector('simple', coalesce(title, '')), 'A')
        || setweight(to_tsvector(coursewise_regconfig(language),
                                 coalesce(array_to_string(skills, ' , '), ''))
                     || to_tsvector('simple', coalesce(array_to_string(skills, ' , '), '')), 'B')
        || setweight(to_tsvector(coursewise_regconfig(language), coalesce(provider, ''))
                     || to_tsvector('simple', coalesce(provider, '')), 'C')
$$
"""
# Read by listings, filters and candidates: kept inline even with the low toast target.
INLINE = (
    "id", "title", "provider", "url", "language", "level", "skills", "currency",
    "content_hash", "index_state", "search_title",
)  # fmt: skip


def upgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} SET search_path FROM CURRENT")
    op.execute(HEAD)
    storage = ", ".join(f"ALTER COLUMN {column} SET STORAGE MAIN" for column in INLINE)
    op.execute(f"ALTER TABLE courses SET (toast_tuple_target = 128), {storage}")
    # Adding a stored generated column rewrites the table: every row is stored the new way.
    op.execute(
        "ALTER TABLE courses ADD COLUMN search_head tsvector GENERATED ALWAYS AS "
        "(coursewise_search_head(title, skills, provider, language)) STORED"
    )
    op.execute(
        "CREATE INDEX ix_courses_search_head ON courses USING gin (search_head) "
        "WITH (fastupdate = off)"
    )
    op.execute("ALTER INDEX ix_courses_search_vector SET (fastupdate = off)")
    op.execute("SELECT gin_clean_pending_list('ix_courses_search_vector')")


def downgrade() -> None:
    op.execute("ALTER INDEX ix_courses_search_vector RESET (fastupdate)")
    op.execute("DROP INDEX IF EXISTS ix_courses_search_head")
    op.execute("ALTER TABLE courses DROP COLUMN IF EXISTS search_head")
    op.execute("DROP FUNCTION IF EXISTS coursewise_search_head(text, text[], text, text)")
    storage = ", ".join(f"ALTER COLUMN {column} SET STORAGE EXTENDED" for column in INLINE)
    op.execute(f"ALTER TABLE courses RESET (toast_tuple_target), {storage}")
    for function in FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} RESET search_path")
