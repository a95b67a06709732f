#!/usr/bin/env python3
"""Writes a C++ file holding each migration (schema/sql/NNN_name.sql) as a string."""
import os
import sys

out, inputs = sys.argv[1], sorted(sys.argv[2:], key=os.path.basename)
lines = ['// Generated from schema/sql by tools/embed_sql.py. Do not edit.',
         '#include <string_view>', '#include <vector>', '',
         'namespace cerberus::store::detail {', '',
         'struct Migration { int version; std::string_view name; std::string_view sql; };', '',
         'const std::vector<Migration>& migrations() {',
         '    static const std::vector<Migration> all{']
for path in inputs:
    base = os.path.basename(path)
    version = int(base.split('_', 1)[0])
    with open(path, encoding='utf-8') as f:
        sql = f.read()
    if ')sql"' in sql:
        sys.exit(f'{path}: contains the raw-string terminator')
    lines.append(f'        {{{version}, "{base}", R"sql({sql})sql"}},')
lines += ['    };', '    return all;', '}', '', '}  // namespace cerberus::store::detail', '']
with open(out, 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines))
