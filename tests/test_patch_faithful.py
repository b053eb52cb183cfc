"""Rung 0 never serves code other than what the file says: a save applies whole or not at all;
code that module-level statements or decorators made, and functools caches, never keep answering
with old code after "patched"; moved code carries its new line numbers; the decision runs off the
serving path (decide() on a thread, commit() between requests) and large saves swap.

The Patcher on real modules, loaded through inference_server.fresh_import as a worker loads them;
test_patch.py has the same end to end, through real servers."""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
import threading
import traceback
import uuid
from pathlib import Path

import pytest

from inference_server import fresh_import, patch_outline, patching


class Modules:
    """User modules in a folder, loaded as a worker loads them, with a Patcher of their own."""

    def __init__(self, folder: Path, patcher: patching.Patcher):
        self.folder, self.patcher = folder, patcher
        self.prefix = f"m{uuid.uuid4().hex[:8]}_"
        self.names: list[str] = []

    def name(self, short: str) -> str:
        return self.prefix + short

    def path(self, short: str) -> Path:
        return self.folder / f"{self.name(short)}.py"

    def load(self, short: str, source: str):
        self.write(short, source)
        self.names.append(self.name(short))
        return importlib.import_module(self.name(short))

    def write(self, short: str, source: str) -> None:
        self.path(short).write_text(textwrap.dedent(source).replace("PREFIX_", self.prefix))

    def source(self, short: str) -> str:
        return self.patcher.sources[str(self.path(short))]

    def edit(self, short: str, old: str, new: str) -> patching.Outcome:
        text = self.path(short).read_text()
        assert old in text, text
        self.path(short).write_text(text.replace(old, new))
        return self.patcher.apply()


@pytest.fixture
def modules(tmp_path, monkeypatch):
    folder = tmp_path / "code"
    folder.mkdir()
    patcher = patching.Patcher([str(folder)])
    sys.path.insert(0, str(folder))
    finders = list(sys.meta_path)
    # Only this test's folder is loaded fresh (an earlier test's finder would take these modules).
    sys.meta_path[:] = [f for f in finders if not isinstance(f, fresh_import.FreshFinder)]
    fresh_import.load_fresh_from([str(folder)], patcher.loaded)
    loaded = Modules(folder, patcher)
    try:
        yield loaded
    finally:
        sys.path.remove(str(folder))
        sys.meta_path[:] = finders
        for name in loaded.names:
            sys.modules.pop(name, None)


# -- 1. a save applies whole or not at all ---------------------------------------------------------


def test_a_failed_save_changes_nothing_and_saving_the_original_back_is_nothing_to_apply(modules):
    original = '''
        def helper():
            return "helper 1"

        def run(raw):
            return "run 1 " + helper()
    '''
    module = modules.load("score", original)
    path = modules.path("score")
    loaded_text = path.read_text()
    modules.write("score", loaded_text.replace('"helper 1"', '"helper 2"').replace('"run 1 "', '"run 2 "')
                  + "\n@undefined_decorator\ndef added():\n    return 1\n")
    decision = modules.patcher.decide()
    assert decision.kind == "patch"  # compiling succeeds: the decorator is only run at commit
    outcome = modules.patcher.commit(decision)
    assert outcome.kind == "failed" and outcome.detail == "NameError: name 'undefined_decorator' is not defined"
    assert module.run(None) == "run 1 helper 1" and not hasattr(module, "added")  # nothing applied
    assert modules.source("score") == loaded_text  # what runs

    path.write_text(loaded_text)  # the original, back
    outcome = modules.patcher.apply()
    assert outcome.kind == "patched" and outcome.nothing and outcome.summary == "nothing to apply (no code changed)"
    assert module.run(None) == "run 1 helper 1"

    modules.edit("score", '"run 1 "', '"run 3 "')
    assert module.run(None) == "run 3 helper 1"


def test_a_default_value_that_raises_leaves_the_other_changes_out_too(modules):
    module = modules.load("score", '''
        def helper():
            return "helper 1"

        def scale(x, by=2):
            return x * by
    ''')
    text = modules.path("score").read_text()
    modules.path("score").write_text(text.replace('"helper 1"', '"helper 2"').replace("by=2", "by=1 // 0"))
    outcome = modules.patcher.apply()
    assert outcome.kind == "failed" and "ZeroDivisionError" in outcome.detail
    assert module.helper() == "helper 1" and module.scale(2) == 4
    assert modules.source("score") == text


def test_a_syntax_error_in_one_file_leaves_the_other_unpatched(modules):
    helper = modules.load("helper", '''
        def answer():
            return "helper 1"
    ''')
    modules.load("score", '''
        def run(raw):
            return 1
    ''')
    modules.write("helper", 'def answer():\n    return "helper 2"\n')
    modules.write("score", "def run(raw):\n    return 1 +\n")
    outcome = modules.patcher.apply()
    assert outcome.kind == "failed" and "invalid syntax" in outcome.detail
    assert helper.answer() == "helper 1"


def test_a_patched_function_is_compiled_as_its_module_is(modules):
    """With the module's own ``from __future__`` imports, not those of the patcher."""
    eager = modules.load("eager", '''
        def f(x: int) -> int:
            return x
    ''')
    postponed = modules.load("postponed", '''
        from __future__ import annotations

        def f(x: Undefined) -> int:
            return x
    ''')
    assert modules.edit("eager", "return x", "return x + 1").detail == "f()"
    assert eager.f.__annotations__ == {"x": int, "return": int} and eager.f(1) == 2
    assert modules.edit("postponed", "return x", "return x + 1").detail == "f()"
    assert postponed.f.__annotations__ == {"x": "Undefined", "return": "int"} and postponed.f(1) == 2


# -- 2. what already ran with the old code ---------------------------------------------------------


def test_a_function_made_by_a_factory_at_import_swaps(modules):
    module = modules.load("score", '''
        def make():
            def helper():
                return "old"
            return helper

        helper = make()
    ''')
    outcome = modules.edit("score", '"old"', '"new"')
    assert outcome.kind == "swap" and outcome.detail == "make() ran at import: what it made keeps the old code"
    assert module.make()() == "old"  # nothing was applied


def test_a_factory_in_another_module_called_at_import_swaps(modules):
    modules.load("helper", '''
        def make():
            def helper():
                return "old"
            return helper
    ''')
    modules.load("score", '''
        from PREFIX_helper import make

        answer = make()
    ''')
    outcome = modules.edit("helper", '"old"', '"new"')
    assert outcome.kind == "swap" and outcome.detail == "make() ran at import: what it made keeps the old code"


def test_a_value_computed_at_import_swaps_and_what_the_main_block_calls_does_not(modules):
    module = modules.load("score", '''
        def build():
            return {"a": 1}

        TABLE = build()

        def run(raw):
            return TABLE["a"]

        if __name__ == "__main__":
            print(run(None))
    ''')
    outcome = modules.edit("score", "TABLE[\"a\"]", "TABLE[\"a\"] + 1")
    assert outcome.kind == "patched" and outcome.detail == "run()", outcome
    assert module.run(None) == 2
    outcome = modules.edit("score", '{"a": 1}', '{"a": 5}')
    assert outcome.kind == "swap" and outcome.detail == "build() ran at import: what it made keeps the old code"


def test_a_decorated_function_called_at_import_swaps(modules):
    """Through a custom decorator's wrapper, which calls the function it closes over."""
    modules.load("score", '''
        def deco(f):
            def wrapper():
                return f()
            return wrapper

        @deco
        def build():
            return {"a": 1}

        TABLE = build()
    ''')
    outcome = modules.edit("score", '{"a": 1}', '{"a": 2}')
    assert outcome.kind == "swap" and outcome.detail == "build() ran at import: what it made keeps the old code"


def test_a_function_made_by_init_that_is_still_in_use_swaps(modules):
    module = modules.load("score", '''
        handler = None

        def make():
            def helper():
                return "old"
            return helper

        def init():
            global handler
            handler = make()
    ''')
    module.init()
    outcome = modules.edit("score", '"old"', '"new"')
    assert outcome.kind == "swap" and outcome.detail == "make() made helper(), which keeps the old code"


def test_the_inner_wrapper_of_a_custom_decorator_swaps_and_the_decorated_function_patches(modules):
    module = modules.load("score", '''
        def deco(f):
            def wrapper(*args):
                return "old " + f(*args)
            return wrapper

        @deco
        def helper():
            return "helper 1"
    ''')
    outcome = modules.edit("score", '"old "', '"new "')
    assert outcome.kind == "swap" and outcome.detail == "deco() ran at import: what it made keeps the old code"
    modules.path("score").write_text(modules.source("score"))
    outcome = modules.edit("score", '"helper 1"', '"helper 2"')
    assert outcome.kind == "patched" and outcome.detail == "helper()", outcome
    assert module.helper() == "old helper 2"


def test_a_cached_function_has_its_cache_cleared(modules):
    module = modules.load("score", '''
        import functools

        @functools.lru_cache
        def helper(x):
            return f"old {x}"

        def compute():
            return "table 1"

        @functools.cache
        def table():
            return compute()

        @functools.cache
        def unrelated():
            return object()
    ''')
    kept = module.unrelated()
    assert module.helper(1) == "old 1" and module.table() == "table 1"
    outcome = modules.edit("score", '"old {x}"', '"new {x}"')
    assert outcome.kind == "patched" and outcome.detail == "helper() (cache cleared)"
    assert module.helper(1) == "new 1"
    outcome = modules.edit("score", '"table 1"', '"table 2"')
    assert outcome.kind == "patched" and outcome.detail == "compute(), table() (cache cleared)"
    assert module.table() == "table 2" and module.unrelated() is kept


# -- 4. moved code carries its new lines -----------------------------------------------------------


def test_functions_below_added_lines_carry_their_new_line_numbers(modules):
    module = modules.load("score", '''
        def helper():
            raise ValueError("where")

        class Model:
            def name(self):
                return [n for n in "ab"]

        def run(raw):
            return helper()
    ''')
    outcome = modules.edit("score", "def helper():", "# a comment\n# and another\n\ndef helper():")
    assert outcome.kind == "patched"
    assert outcome.detail == "the line numbers of helper(), Model.name(), run()"
    text = modules.path("score").read_text()
    assert modules.source("score") == text
    lines = text.splitlines()
    with pytest.raises(ValueError) as raised:
        module.run(None)
    frames = traceback.extract_tb(raised.value.__traceback__)[-2:]
    assert [(f.name, f.lineno, f.line) for f in frames] == [
        ("run", lines.index("    return helper()") + 1, "return helper()"),
        ("helper", lines.index('    raise ValueError("where")') + 1, 'raise ValueError("where")')]
    comprehension = lines.index('        return [n for n in "ab"]') + 1
    assert comprehension in {line for _, _, line in module.Model.name.__code__.co_lines()}
    assert module.Model().name() == ["a", "b"]


def test_a_comment_inside_a_moved_function_recompiles_it_with_its_new_lines(modules):
    module = modules.load("score", '''
        def helper():
            x = 1
            return x
    ''')
    outcome = modules.edit("score", "    x = 1\n", "    # why x is 1\n    x = 1\n")
    assert outcome.kind == "patched" and outcome.detail == "the line numbers of helper()"
    assert {line for _, _, line in module.helper.__code__.co_lines() if line} >= {4, 5}


def test_a_comment_that_moves_no_code_is_nothing_to_apply_and_recorded(modules):
    modules.load("score", '''
        def helper():
            return 1
    ''')
    outcome = modules.edit("score", "return 1\n", "return 1\n\n# the end\n")
    assert outcome.nothing
    assert modules.source("score") == modules.path("score").read_text()


def test_a_moved_factory_relines_what_it_made(modules):
    module = modules.load("score", '''
        def make():
            def helper():
                raise ValueError("where")
            return helper

        helper = make()
    ''')
    outcome = modules.edit("score", "def make():", "# a comment\ndef make():")
    assert outcome.kind == "patched" and outcome.detail == "the line numbers of make()"
    assert module.helper.__code__.co_firstlineno == 4


def test_a_moved_module_level_lambda_swaps(modules):
    modules.load("score", '''
        def helper():
            return 1

        key = lambda x: x
    ''')
    outcome = modules.edit("score", "def helper():", "# a comment\ndef helper():")
    assert outcome.kind == "swap" and outcome.detail == (
        f"module-level code of {modules.name('score')} that makes functions moved (line 6): "
        "they would keep their old line numbers")


def test_a_class_with_a_property_setter_moves_and_its_getter_patches(modules):
    module = modules.load("score", '''
        class Model:
            def __init__(self):
                self._x = 1

            @property
            def x(self):
                return self._x

            @x.setter
            def x(self, value):
                raise ValueError(value)
    ''')
    instance = module.Model()
    outcome = modules.edit("score", "class Model:", "# a comment\nclass Model:")
    assert outcome.kind == "patched"
    assert outcome.detail == "the line numbers of Model.__init__(), Model.x(), Model.x()"
    with pytest.raises(ValueError) as raised:
        instance.x = 2
    assert raised.value.__traceback__.tb_next.tb_lineno == 13
    outcome = modules.edit("score", "return self._x", "return self._x * 10")
    assert outcome.kind == "patched" and outcome.detail == "Model.x()" and instance.x == 10


def test_a_function_under_a_wraps_decorator_patches_and_moves(modules):
    modules.load("deco", '''
        import functools

        def logged(f):
            @functools.wraps(f)
            def wrapper(*args):
                return f(*args)
            return wrapper
    ''')
    module = modules.load("score", '''
        from PREFIX_deco import logged

        @logged
        def run(raw):
            return 1
    ''')
    outcome = modules.edit("score", "return 1", "return 2")
    assert outcome.kind == "patched" and outcome.detail == "run()" and module.run(None) == 2
    outcome = modules.edit("score", "@logged", "\n\n@logged")
    assert outcome.kind == "patched" and outcome.detail == "the line numbers of run()"
    assert module.run.__wrapped__.__code__.co_firstlineno == 6


# -- 5. decide() off the serving path, commit() between requests ------------------------------------


def test_decide_changes_nothing_and_runs_on_another_thread(modules):
    module = modules.load("score", '''
        def run(raw):
            return 1
    ''')
    modules.write("score", "def run(raw):\n    return 2\n")
    result = {}
    thread = threading.Thread(target=lambda: result.update(decision=modules.patcher.decide()))
    thread.start()
    thread.join(30)
    decision = result["decision"]
    assert decision.kind == "patch" and decision.detail == "run()"
    assert module.run(None) == 1 and modules.source("score") != modules.path("score").read_text()
    outcome = modules.patcher.commit(decision)
    assert outcome.kind == "patched" and outcome.detail == "run()" and module.run(None) == 2
    assert outcome.duration_ms >= outcome.commit_ms > 0


def test_a_decision_made_before_another_commit_is_made_again(modules):
    module = modules.load("score", '''
        def run(raw):
            return 1
    ''')
    modules.write("score", "def run(raw):\n    return 2\n")
    early = modules.patcher.decide()
    modules.write("score", "def run(raw):\n    return 3\n")
    assert modules.patcher.apply().kind == "patched" and module.run(None) == 3
    outcome = modules.patcher.commit(early)  # stale: decided against the source before
    assert outcome.nothing and module.run(None) == 3


def test_a_save_parses_what_it_changed_and_the_running_source_once(modules, monkeypatch):
    """The running source is outlined on the first save (in pieces, so the event loop's thread
    gets to run between them) and kept; a save parses only the statements between the lines it
    shares with the source before it."""
    functions = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(3000))
    module = modules.load("score", functions)
    parsed: list[int] = []
    real = patch_outline._parse
    monkeypatch.setattr(patch_outline, "_parse", lambda text, path: parsed.append(len(text)) or real(text, path))
    assert modules.edit("score", "return x + 1500\n", "return x - 1500\n").detail == "f1500()"
    running = [size for size in parsed if size > 100]  # the running source, once, a piece at a time
    assert sum(running) == len(functions) and max(running) < 2 * patch_outline.PIECE, parsed
    assert len(parsed) - len(running) <= 3, parsed  # the save's function (and both its trees, to compare)
    parsed.clear()
    outcome = modules.edit("score", "return x + 10\n", "return x - 10\n\n# more\n")
    assert outcome.detail == f"f10() and the line numbers of f11(), f12(), f13(), f14(), f15(), f16() and {2983} more"
    assert max(parsed) < 100, parsed
    assert module.f10(0) == -10 and module.f1500(0) == -1500 and module.f2999.__code__.co_firstlineno == 2999 * 4 + 3
    decision = modules.patcher.decide()
    assert decision.kind == "nothing" and decision.decide_ms < 1000


def _statements(outline) -> list[tuple]:
    return [(s.kind, s.name, s.lineno, s.first, s.end_lineno) for s in outline.statements]


def _parsed_whole(source: str) -> list[tuple]:
    return _statements(patch_outline.Outline(source, "x.py", patch_outline._records(ast.parse(source), 0)))


def test_an_outline_made_in_pieces_is_the_whole_one():
    """Pieces that end inside a string or brackets are parsed with the next one."""
    filler = "".join(f"def f{i}():\n    return {i}\n\n" for i in range(2000))
    tricky = 'TEXT = """\ndef not_a_function():\n@not_a_decorator\n"""\n\nCALL = print(\n    1,\n)\n\n'
    source = (filler + tricky) * 3 + "@decorated\n@twice\ndef last():\n    pass\n"
    assert len(source) > 4 * patch_outline.PIECE
    assert _statements(patch_outline.outline(source, "x.py")) == _parsed_whole(source)


@pytest.mark.parametrize("edit", [
    lambda s: "# a comment\n" + s,  # lines added above everything
    lambda s: s.replace("return 700\n", "x = 1\n    return 700\n\n\n"),  # inside a function, lines added
    lambda s: s.replace("def f900():\n    return 900\n", ""),  # a function removed
    lambda s: s + "def added():\n    pass\n",  # at the end
    lambda s: s.replace("A = 1\n", 'A = """\n'),  # a string opened here and closed below: parsed whole
])
def test_an_outline_after_a_save_is_the_whole_one(edit):
    source = "".join(f"def f{i}():\n    return {i}\n\n" for i in range(1000))
    source = "A = 1\n" + source + 'B = 2  # """\n'
    before = patch_outline.outline(source, "x.py")
    saved = edit(source)
    assert saved != source
    assert _statements(patch_outline.outline_after(before, saved)) == _parsed_whole(saved)


def test_a_syntax_error_names_its_line_in_a_large_module(modules):
    functions = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(3000))
    modules.load("score", functions)
    outcome = modules.edit("score", "return x + 2500\n", "return x +\n")
    assert outcome.kind == "failed" and outcome.detail.startswith("invalid syntax")
    assert outcome.detail.endswith(f"line {2500 * 3 + 2})")


def test_a_large_save_swaps(modules):
    functions = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(30000))
    assert len(functions) > patching.PATCH_LIMIT_BYTES
    modules.load("score", "def run(raw):\n    return 1\n\n" + functions)
    outcome = modules.edit("score", "return 1", "return 2")
    assert outcome.kind == "swap" and outcome.detail.startswith(f"{modules.name('score')}.py is ")
    assert outcome.detail.endswith("over the 512 KB a patch compares without holding up requests")


# -- 14. small things ------------------------------------------------------------------------------


def test_run_made_async_says_so(modules):
    modules.load("score", '''
        def run(raw):
            return 1
    ''')
    outcome = modules.edit("score", "def run(raw):", "async def run(raw):")
    assert outcome.kind == "swap" and outcome.detail == "run changed from a function to an async function"


def test_nothing_changed_is_said_in_words(modules):
    modules.load("score", "def run(raw):\n    return 1\n")
    outcome = modules.patcher.apply()
    assert outcome.kind == "patched" and outcome.detail == "" and outcome.nothing
    assert outcome.summary == "nothing to apply (no code changed)"
