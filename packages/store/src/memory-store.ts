export class MemoryFleetStore {}
