#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm install` through the `prepare` script).
import { main } from '../dist/lib/cli/main.js'

process.exit(await main(process.argv))
