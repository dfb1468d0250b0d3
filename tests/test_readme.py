"""Every Python block of README.md runs as written, as a new user runs it.

Each ```python block runs in a new Python process, in an empty folder, with
none of this process's Keras or Theano settings (KERAS_BACKEND,
THEANO_FLAGS, SEQ2SEQ_*): what the package and its start-up hook do on their
own is what the reader gets.

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
"""
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

from nose.plugins.attrib import attr

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'README.md')
SIGNATURE_MARK = '<!-- signature -->'
OUTLINE_MARK = '<!-- outline -->'

# kind: 'program' (run), 'signature' or 'outline' (see the module docstring).
Block = collections.namedtuple('Block', 'line heading code kind')
_KINDS = {SIGNATURE_MARK: 'signature', OUTLINE_MARK: 'outline'}


def python_blocks(text):
    """The ```python blocks of a Markdown `text`, with the line they start
    on, the heading above them and their kind (by the mark above them)."""
    blocks, heading, previous = [], '', ''
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith('#'):
            heading = line.lstrip('#').strip()
        if line.strip() == '```python':
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != '```':
                end += 1
            blocks.append(Block(start + 1, heading, '\n'.join(lines[start:end]) + '\n',
                                _KINDS.get(previous.strip(), 'program')))
            i = end
        if line.strip():
            previous = line
        i += 1
    return blocks


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
    assert process.returncode == 0, 'README.md line %d (%s) failed:\n%s' % (
        block.line, block.heading, process.stderr[-3000:])


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


def check_signature(block):
    """Each name the block shows is the package's, and takes every argument
    shown."""
    import seq2seq
    import seq2seq.models
    calls = signature_calls(block.code)
    assert calls, 'README.md line %d: no signature found' % block.line
    for name, arguments in calls:
        target = getattr(seq2seq, name, None) or getattr(seq2seq.models, name, None)
        assert target is not None, 'README.md line %d: seq2seq has no %s' % (block.line, name)
        accepted = accepted_arguments(target)
        missing = [a for a in arguments if accepted is not None and a not in accepted]
        assert not missing, 'README.md line %d: %s takes no %s' % (block.line, name, missing)


def check_outline(block):
    """An outline needs the reader's data: it must parse, and its imports run."""
    import ast
    tree = ast.parse(block.code, 'README.md line %d' % block.line)
    lines = block.code.splitlines()
    ends = [node.lineno - 1 for node in tree.body[1:]] + [len(lines)]
    imports = ['\n'.join(lines[node.lineno - 1:end]) for node, end in zip(tree.body, ends)
               if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert imports, 'README.md line %d: an outline without imports' % block.line
    run_block(block._replace(code='\n'.join(imports) + '\n'))


def _readme_blocks():
    with open(README) as handle:
        blocks = python_blocks(handle.read())
    assert len(blocks) >= 8, blocks
    return blocks


def _is_2015_example(block):
    return block.heading.startswith('Example (the 2015 README')


@attr('slow')
def test_readme_programs():
    """Every program block but the 2015 example (each trains or compiles a
    model in a new process: minutes in all)."""
    for block in _readme_blocks():
        if block.kind == 'program' and not _is_2015_example(block):
            yield _case(run_block, block)


def test_readme_2015_example_runs_as_written():
    """`import keras` first, KERAS_BACKEND unset: the start-up hook's case."""
    examples = [block for block in _readme_blocks() if _is_2015_example(block)]
    assert len(examples) == 1, examples
    run_block(examples[0])


def test_readme_signatures_and_outlines():
    checks = {'signature': check_signature, 'outline': check_outline}
    for block in _readme_blocks():
        if block.kind in checks:
            yield _case(checks[block.kind], block)


def _case(check, block):
    def case():
        check(block)
    case.description = 'README.md line %d (%s)%s' % (
        block.line, block.heading, '' if block.kind == 'program' else ': ' + block.kind)
    return case


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
    blocks = python_blocks(text)
    assert blocks == [Block(3, 'A', 'x = 1\n', 'program'),
                      Block(9, 'B', 'f(a, b)\n', 'signature')]


def test_a_failing_block_fails_the_test():
    block = Block(1, 'broken', 'import sys\nundefined_name\n', 'program')
    try:
        run_block(block)
    except AssertionError as error:
        assert 'NameError' in str(error) and 'line 1 (broken)' in str(error), str(error)
    else:
        raise AssertionError('a block raising NameError passed')
