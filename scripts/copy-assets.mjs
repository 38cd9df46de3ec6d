// Copies the non-TypeScript files the build needs next to the emitted JS: the Redis Lua
// commands, and the review console's front end (served from dist/http/console-ui).
import { cpSync } from 'node:fs';
cpSync('src/adapters/redis/commands', 'dist/adapters/redis/commands', { recursive: true });
cpSync('src/http/console-ui', 'dist/http/console-ui', { recursive: true });
