"""The documentation is true: README.md, docs/*.md and examples/g2p/README.md.

Every ```python block runs as written, as a new user runs it: each in a new
Python process, in an empty folder, with none of this process's Keras or
Theano settings (KERAS_BACKEND, THEANO_FLAGS, SEQ2SEQ_*), so what the package
and its start-up hook do on their own is what the reader gets.

A block that is not a whole program is marked by an HTML comment on the
line before its fence (invisible on GitHub):

    <!-- signature -->
    ```python
    Seq2seq(input_length, input_dim, hidden_dim, ...)
    ```

* `<!-- signature -->`: calls shown as an API reference; not run, but each
  name must be the package's and take every argument shown.
* `<!-- outline -->`: a program that needs the reader's own data; it must
  parse and its import statements run.

Besides: README.md stays short (at most 400 lines), every relative link of
the documents leads to an existing file (and heading), every document is
reachable from README.md, and every `seq2seq COMMAND --option` a shell
block shows is an option of that command.
"""
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

from nose.plugins.attrib import attr

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
README = os.path.join(ROOT, 'README.md')
README_MAX_LINES = 400
SIGNATURE_MARK = '<!-- signature -->'
OUTLINE_MARK = '<!-- outline -->'


def documents():
    """The documents whose blocks are tested, as paths relative to ROOT:
    README.md, every docs/*.md, examples/g2p/README.md."""
    docs = sorted(os.path.relpath(path, ROOT)
                  for path in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
    return ['README.md'] + docs + [os.path.join('examples', 'g2p', 'README.md')]


# kind: 'program' (run), 'signature' or 'outline' (see the module docstring);
# document: the file, relative to ROOT.
Block = collections.namedtuple('Block', 'line heading code kind document')
Block.__new__.__defaults__ = ('README.md',)
_KINDS = {SIGNATURE_MARK: 'signature', OUTLINE_MARK: 'outline'}


def fenced_blocks(text, language):
    """[(line of the first code line, heading above, code, previous non-blank
    line)] of the ```language blocks of a Markdown `text`."""
    blocks, heading, previous = [], '', ''
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith('#'):
            heading = line.lstrip('#').strip()
        if line.strip().startswith('```'):
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != '```':
                end += 1
            if line.strip() == '```' + language:
                blocks.append((start + 1, heading, '\n'.join(lines[start:end]) + '\n',
                               previous))
            i = end
        if line.strip():
            previous = line
        i += 1
    return blocks


def python_blocks(text, document='README.md'):
    """The ```python blocks of a Markdown `text`, with the line they start
    on, the heading above them and their kind (by the mark above them)."""
    return [Block(line, heading, code, _KINDS.get(previous.strip(), 'program'), document)
            for line, heading, code, previous in fenced_blocks(text, 'python')]


def _where(block):
    return '%s line %d (%s)' % (block.document, block.line, block.heading)


def _clean_environment():
    env = {name: value for name, value in os.environ.items()
           if not name.startswith('SEQ2SEQ_') and name not in ('KERAS_BACKEND', 'THEANO_FLAGS')}
    # Keep the compile cache this run uses, if it was moved.
    flags = [item for item in os.environ.get('THEANO_FLAGS', '').split(',')
             if item.strip().startswith(('base_compiledir', 'compiledir'))]
    if flags:
        env['THEANO_FLAGS'] = ','.join(flags)
    return env


def run_block(block):
    folder = tempfile.mkdtemp(prefix='seq2seq-readme-')
    try:
        process = subprocess.run([sys.executable, '-c', block.code], cwd=folder,
                                 env=_clean_environment(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, universal_newlines=True, timeout=900)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert process.returncode == 0, '%s failed:\n%s' % (_where(block), process.stderr[-3000:])


def signature_calls(code):
    """[(name, [argument names])] of the calls a signature block shows, one
    per `Name(...)` at the start of a line; `...` and comments left out."""
    calls = []
    for match in re.finditer(r'^(\w+)\((.*?)\)(?=\s*(#.*)?$)', code, re.M | re.S):
        arguments = re.sub(r'#.*', '', match.group(2))
        names = [argument.split('=')[0].strip() for argument in arguments.split(',')]
        calls.append((match.group(1), [name for name in names if name and name != '...']))
    return calls


# What Keras 2.3.1's Layer.__init__ takes by keyword.
KERAS_LAYER_ARGUMENTS = {'input_shape', 'batch_input_shape', 'batch_size', 'dtype', 'name',
                         'trainable', 'weights', 'input_dtype'}

# Where the names of a signature block are looked up, in this order: the
# public paths the documents teach.
SIGNATURE_MODULES = ('seq2seq', 'seq2seq.models', 'seq2seq.inference', 'seq2seq.decoding',
                     'seq2seq.conversation', 'seq2seq.callbacks')


def accepted_arguments(target):
    """The argument names `target` (a class or function) takes, following
    **kwargs up the classes' __init__ to Keras' Layer; None: any."""
    import inspect
    from keras.engine.base_layer import Layer
    if not inspect.isclass(target):
        parameters = inspect.signature(target).parameters.values()
        if any(p.kind == p.VAR_KEYWORD for p in parameters):
            return None
        return {p.name for p in parameters}
    names = set(KERAS_LAYER_ARGUMENTS) if issubclass(target, Layer) else set()
    for cls in target.__mro__:
        if '__init__' not in cls.__dict__ or cls in (Layer, object):
            continue
        parameters = inspect.signature(cls.__dict__['__init__']).parameters.values()
        names |= {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names - {'self'}


def _public_name(name):
    import importlib
    for module_name in SIGNATURE_MODULES:
        target = getattr(importlib.import_module(module_name), name, None)
        if target is not None:
            return target
    return None


def check_signature(block):
    """Each name the block shows is the package's, and takes every argument
    shown."""
    calls = signature_calls(block.code)
    assert calls, '%s: no signature found' % _where(block)
    for name, arguments in calls:
        target = _public_name(name)
        assert target is not None, '%s: seq2seq has no %s' % (_where(block), name)
        accepted = accepted_arguments(target)
        missing = [a for a in arguments if accepted is not None and a not in accepted]
        assert not missing, '%s: %s takes no %s' % (_where(block), name, missing)


def check_outline(block):
    """An outline needs the reader's data: it must parse, and its imports run."""
    import ast
    tree = ast.parse(block.code, _where(block))
    lines = block.code.splitlines()
    ends = [node.lineno - 1 for node in tree.body[1:]] + [len(lines)]
    imports = ['\n'.join(lines[node.lineno - 1:end]) for node, end in zip(tree.body, ends)
               if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert imports, '%s: an outline without imports' % _where(block)
    run_block(block._replace(code='\n'.join(imports) + '\n'))


def _read(document):
    with open(os.path.join(ROOT, document)) as handle:
        return handle.read()


def _all_blocks():
    blocks = []
    for document in documents():
        blocks += python_blocks(_read(document), document)
    assert len([b for b in blocks if b.kind == 'program']) >= 8, blocks
    return blocks


def _is_2015_example(block):
    return block.document == 'README.md' and block.heading.startswith('Example (the 2015 README')


@attr('slow')
def test_documented_programs():
    """Every program block but the 2015 example (each trains or compiles a
    model in a new process: minutes in all)."""
    for block in _all_blocks():
        if block.kind == 'program' and not _is_2015_example(block):
            yield _case(run_block, block)


def test_readme_2015_example_runs_as_written():
    """`import keras` first, KERAS_BACKEND unset: the start-up hook's case."""
    examples = [block for block in _all_blocks() if _is_2015_example(block)]
    assert len(examples) == 1, examples
    run_block(examples[0])


def test_documented_signatures_and_outlines():
    checks = {'signature': check_signature, 'outline': check_outline}
    for block in _all_blocks():
        if block.kind in checks:
            yield _case(checks[block.kind], block)


def _case(check, block):
    def case():
        check(block)
    case.description = '%s%s' % (_where(block),
                                 '' if block.kind == 'program' else ': ' + block.kind)
    return case


# -- the README's size and the documents' links ----------------------------------------

def test_readme_is_short():
    """A newcomer reads it in ten minutes; the rest is in docs/."""
    lines = len(_read('README.md').splitlines())
    assert lines <= README_MAX_LINES, 'README.md has %d lines, at most %d' % (
        lines, README_MAX_LINES)


def markdown_links(text):
    """[(line, target)] of the inline links `[text](target)` of a Markdown
    `text`, outside code blocks and code spans."""
    links, in_code = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith('```'):
            in_code = not in_code
            continue
        if in_code:
            continue
        line = re.sub(r'`[^`]*`', '', line)
        links += [(number, target) for target in re.findall(r'\]\(([^)\s]+)\)', line)]
    return links


def heading_anchors(text):
    """The anchors GitHub gives the headings of a Markdown `text`."""
    anchors, seen, in_code = set(), collections.Counter(), False
    for line in text.splitlines():
        if line.strip().startswith('```'):
            in_code = not in_code
        if in_code or not re.match(r'#{1,6} ', line):
            continue
        slug = re.sub(r'[^\w\- ]', '', line.lstrip('#').strip().lower()).replace(' ', '-')
        anchors.add(slug if not seen[slug] else '%s-%d' % (slug, seen[slug]))
        seen[slug] += 1
    return anchors


def broken_links(document):
    """['line N: target (why)'] for each relative link of `document` (a path
    relative to ROOT) that leads to no file, or to no heading of it."""
    broken = []
    folder = os.path.dirname(os.path.join(ROOT, document))
    for number, target in markdown_links(_read(document)):
        if re.match(r'[a-z]+:', target):          # http:, https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        full = os.path.normpath(os.path.join(folder, path)) if path else \
            os.path.join(ROOT, document)
        if not os.path.exists(full):
            broken.append('line %d: %s (no such file)' % (number, target))
        elif anchor and full.endswith('.md'):
            with open(full) as handle:
                if anchor not in heading_anchors(handle.read()):
                    broken.append('line %d: %s (no such heading)' % (number, target))
    return broken


def test_readme_links_lead_to_existing_files():
    broken = broken_links('README.md')
    assert not broken, 'README.md: broken links:\n' + '\n'.join(broken)


def test_every_document_links_to_existing_files():
    for document in documents()[1:] + [os.path.join('benchmarks', 'README.md')]:
        broken = broken_links(document)
        assert not broken, '%s: broken links:\n%s' % (document, '\n'.join(broken))


def test_every_document_is_linked_from_the_readme():
    """A reader finds every document from README.md."""
    linked = {os.path.normpath(target.partition('#')[0])
              for _, target in markdown_links(_read('README.md'))}
    missing = [document for document in documents()[1:]
               + [os.path.join('benchmarks', 'README.md')] if document not in linked]
    assert not missing, 'README.md links to none of %s' % missing


# -- the command lines shown -------------------------------------------------------------

def shell_commands(text):
    """[(line, command, [--options])] of every `seq2seq COMMAND ...` in the
    ```sh blocks of a Markdown `text` (continued lines joined; up to a pipe,
    a redirection or a comment)."""
    found = []
    for first_line, _, code, _ in fenced_blocks(text, 'sh'):
        logical, start = '', None
        for offset, line in enumerate(code.splitlines()):
            if start is None:
                start = first_line + offset
            logical += ' ' + line.rstrip('\\')
            if line.endswith('\\'):
                continue
            for match in re.finditer(r'(?:^|[\s|(;])seq2seq (\w+)([^|<>#;]*)', logical):
                found.append((start, match.group(1), re.findall(r'(--[\w-]+)', match.group(2))))
            logical, start = '', None
    return found


def test_shell_blocks_use_existing_options():
    """Each `seq2seq COMMAND --option` a document shows is one the command
    line takes: a user copies these."""
    from seq2seq.app.cli import build_parser
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    checked = 0
    for document in documents():
        for line, command, options in shell_commands(_read(document)):
            assert command in commands, '%s line %d: no command seq2seq %s' % (
                document, line, command)
            unknown = [o for o in options if o not in commands[command]._option_string_actions]
            assert not unknown, '%s line %d: seq2seq %s takes no %s' % (
                document, line, command, unknown)
            checked += 1
    assert checked >= 10, checked


# -- the checks check ---------------------------------------------------------------------

def test_signature_arguments_are_checked():
    assert signature_calls('Seq2seq(input_length, depth=1,\n        ...)\n'
                           'LSTMDecoder2(dim, x, ...)   # Cho-style\n') == \
        [('Seq2seq', ['input_length', 'depth']), ('LSTMDecoder2', ['dim', 'x'])]
    try:
        check_signature(Block(1, 'bad', 'Seq2seq(input_length, no_such_argument=1)\n',
                              'signature'))
    except AssertionError as error:
        assert "['no_such_argument']" in str(error), str(error)
    else:
        raise AssertionError('an unknown argument passed')
    check_signature(Block(1, 'search', 'beam_decode(model, x, beam_size=5)\n', 'signature'))


def test_an_outline_runs_its_imports_only():
    check_outline(Block(1, 'outline', 'from seq2seq.decoding import greedy_search\n'
                                      'greedy_search(step, states, max_length)\n', 'outline'))
    try:
        check_outline(Block(1, 'outline', 'from seq2seq.decoding import no_such_name\n'
                                          'no_such_name(data)\n', 'outline'))
    except AssertionError as error:
        assert 'ImportError' in str(error), str(error)
    else:
        raise AssertionError('an outline importing a missing name passed')


def test_block_extraction_and_signature_marks():
    text = ('# A\n```python\nx = 1\n```\n## B\n<!-- signature -->\n\n```python\nf(a, b)\n```\n'
            '```sh\nmake\n```\n')
    blocks = python_blocks(text, 'doc.md')
    assert blocks == [Block(3, 'A', 'x = 1\n', 'program', 'doc.md'),
                      Block(9, 'B', 'f(a, b)\n', 'signature', 'doc.md')]


def test_a_failing_block_fails_the_test():
    block = Block(1, 'broken', 'import sys\nundefined_name\n', 'program', 'docs/x.md')
    try:
        run_block(block)
    except AssertionError as error:
        assert 'NameError' in str(error) and 'docs/x.md line 1 (broken)' in str(error), str(error)
    else:
        raise AssertionError('a block raising NameError passed')


def test_link_and_anchor_checks():
    text = ('# Set up and run\n## `Seq2seq`, the layer\n```sh\n[x](nowhere.md)\n```\n'
            'see [a](README.md#set-up-and-run), [b](#seq2seq-the-layer), `[c](no.md)`, '
            '[d](https://example.com/x.md)\n')
    assert markdown_links(text) == [(6, 'README.md#set-up-and-run'), (6, '#seq2seq-the-layer'),
                                    (6, 'https://example.com/x.md')]
    assert heading_anchors(text) == {'set-up-and-run', 'seq2seq-the-layer'}
    assert heading_anchors('# A\n## A\n') == {'a', 'a-1'}


def test_shell_commands_are_found():
    text = ('```sh\nseq2seq train --train t.tsv \\\n    --model-dir D  # --not-this\n'
            'echo x | seq2seq predict --beam-size 5 < in.txt\nmake demo\n```\n')
    assert shell_commands(text) == [(2, 'train', ['--train', '--model-dir']),
                                    (4, 'predict', ['--beam-size'])]
