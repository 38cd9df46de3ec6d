// Copies the non-TypeScript files the build needs (Redis Lua commands) next to the emitted JS.
import { cpSync } from 'node:fs';
cpSync('src/adapters/redis/commands', 'dist/adapters/redis/commands', { recursive: true });
