"""A griffe extension for the API pages, which are read by importing conkernel (force_inspection).

- Methods that fastcore's `@patch` added to a class from another module are documented with the class
  (griffe would take them for names imported from that module, which mkdocstrings leaves out).
- A value's docstring is its own, not its type's: `CHANNELS = ('shell', ...)` is not documented as `tuple`.
- A traitlets trait shows as its type and default, `Float(60.0)`, not as the trait object's repr."""
import griffe
from traitlets import TraitType


class PatchedMembers(griffe.Extension):
    "Documents `@patch`ed methods with their class; drops docstrings that only a value's type gave"
    def on_class_members(self, *, node, cls, agent, **kwargs):
        for child in node.children:
            if child.alias_target_path and child.name in vars(node.obj) and not child.name.startswith('_'):
                agent.inspect(child)

    def on_attribute_instance(self, *, node, attr, **kwargs):
        if isinstance(node.obj, TraitType): attr.value = f"{type(node.obj).__name__}({node.obj.default_value_repr()})"
        if node.obj.__doc__ == type(node.obj).__doc__: attr.docstring = None
