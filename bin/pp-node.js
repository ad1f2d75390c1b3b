#!/usr/bin/env node
// The `pp-node` command: see `npx pp-node --help`.
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error('pp-node: unexpected error:', error);
    process.exit(1);
  },
);
