/** Classes that may travel as instances (both ways, matched by name): the registry. */
import { CodecError } from './format.ts';

/** Classes that may travel as instances, both ways, matched by name. */
export interface ClassRegistry {
  byCtor: Map<Function, string>;
  byName: Map<string, Function>;
}

export function makeClassRegistry(classes: Iterable<[name: string, ctor: Function]>): ClassRegistry {
  const byCtor = new Map<Function, string>();
  const byName = new Map<string, Function>();
  for (const [name, ctor] of classes) {
    if (typeof ctor !== 'function' || typeof ctor.prototype !== 'object' || ctor.prototype === null) {
      throw new CodecError(`classes: ${name} is not a class`, 'classes');
    }
    const prev = byName.get(name);
    if (prev !== undefined && prev !== ctor) {
      throw new CodecError(`classes: two different classes are registered as ${name}`, 'classes');
    }
    byName.set(name, ctor);
    if (!byCtor.has(ctor)) byCtor.set(ctor, name);
  }
  return { byCtor, byName };
}
