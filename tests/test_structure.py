"""The package's layers, as its folders show them (docs/architecture.md):
every import inside seq2seq runs to its own folder or a folder below, no two
modules import each other at import time, and no module imports another's
private (`_name`) names. Read from the source with `ast`; nothing is run."""
import ast
import os

import seq2seq

PACKAGE = os.path.dirname(os.path.abspath(seq2seq.__file__))

# Bottom first: a folder may import from its own rank or lower.
RANKS = {
    'util': 0,
    'ops': 1,
    '_theano': 2,
    'layers': 3,
    'search': 4,
    'models': 5,
    'training': 6, 'legacy': 6,
    'app': 7, 'datasets': 7,
    '': 8,            # the package's own __init__, __main__, import_aliases
}


def _modules():
    """{dotted module name: (path, folder)} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        relative = os.path.relpath(folder, PACKAGE)
        parts = [] if relative == '.' else relative.split(os.sep)
        for name in files:
            if not name.endswith('.py'):
                continue
            module = ['seq2seq'] + parts + ([] if name == '__init__.py' else [name[:-3]])
            found['.'.join(module)] = (os.path.join(folder, name), parts[0] if parts else '')
    return found


def _imports(module, path):
    """[(target module, imported names, line, at module level)] of a module's
    imports of the package (relative or absolute)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    package = module if path.endswith('__init__.py') else module.rsplit('.', 1)[0]
    top_level = set(id(node) for node in tree.body)
    results = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            if target != 'seq2seq' and not target.startswith('seq2seq.'):
                continue
            names = [alias.name for alias in node.names]
            results.append((target, names, node.lineno, id(node) in top_level))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith('seq2seq.'):
                    results.append((alias.name, [], node.lineno, id(node) in top_level))
    return results


def _folder_of(target, modules):
    """The folder of an imported name's module (a module of the package, or
    a submodule imported with `from package import module`)."""
    parts = target.split('.')
    return parts[1] if len(parts) > 1 and parts[1] in RANKS else ''


def test_imports_run_only_downwards():
    modules = _modules()
    upward = []
    for module, (path, folder) in sorted(modules.items()):
        for target, names, line, _ in _imports(module, path):
            targets = [target] if target != 'seq2seq' else ['seq2seq.' + n for n in names]
            for each in targets:
                to_folder = _folder_of(each, modules)
                if RANKS[to_folder] > RANKS[folder]:
                    upward.append('%s:%d imports %s (%s above %s)'
                                  % (os.path.relpath(path, PACKAGE), line, each,
                                     to_folder or 'the package root', folder))
    assert not upward, '\n'.join(upward)


def _private(name):
    return name.startswith('_') and not name.startswith('__')


def test_no_private_name_is_imported_from_another_module():
    """Neither a `_name` from another module nor anything from inside the
    private `_theano` package (the patches, applied by the package's
    `__init__` alone)."""
    modules = _modules()
    private = []
    for module, (path, folder) in sorted(modules.items()):
        for target, names, line, _ in _imports(module, path):
            inside = [part for part in target.split('.')[1:] if _private(part)]
            if inside and folder not in inside and module != 'seq2seq':
                private.append('%s:%d imports from %s'
                               % (os.path.relpath(path, PACKAGE), line, target))
            for name in names:
                if _private(name) and not (module == 'seq2seq' and name == '_theano'):
                    private.append('%s:%d imports %s from %s'
                                   % (os.path.relpath(path, PACKAGE), line, name, target))
    assert not private, '\n'.join(private)


def test_no_import_circle_at_import_time():
    modules = _modules()
    graph = {}
    for module, (path, _) in modules.items():
        edges = set()
        for target, names, _, top_level in _imports(module, path):
            if not top_level:
                continue     # a lazy import inside a function runs after both loaded
            for each in [target] + ['%s.%s' % (target, n) for n in names]:
                if each in modules and each != module:
                    edges.add(each)
        graph[module] = edges

    def reaches(start, goal, seen):
        for nxt in graph.get(start, ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reaches(nxt, goal, seen):
                    return True
        return False

    # A package's __init__ importing its own submodules is no circle.
    circles = sorted(m for m in graph for n in graph[m]
                     if not n.startswith(m + '.') and not m.startswith(n + '.')
                     and reaches(n, m, set()))
    assert not circles, circles


def test_every_folder_has_a_rank():
    folders = set(folder for _, folder in _modules().values())
    assert folders <= set(RANKS), folders - set(RANKS)
